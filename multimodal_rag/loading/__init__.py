"""Loaders: PDFs and folders of articles into text chunks and figures."""
