"""The retrieval side: settings, the multimodal retriever, and the figure links it uses.

Imports form a DAG: ``store`` → ``search`` → ``retrieval`` → engines → index.
"""

from __future__ import annotations

from ..search.links import add_page_links, figure_links, own_figures
from .config import DEFAULT_WEIGHTS, EXACT_WEIGHTS, VISUAL_WEIGHTS, RetrieverConfig
from .retriever import MultiModalRetriever

__all__ = [
    "DEFAULT_WEIGHTS",
    "EXACT_WEIGHTS",
    "VISUAL_WEIGHTS",
    "MultiModalRetriever",
    "RetrieverConfig",
    "add_page_links",
    "figure_links",
    "own_figures",
]
