"""Test helpers that build their own data: PDFs, tiny models, embedders, Chroma servers."""
