"""What a query asks for, read from generic English cue words.

A question that names a kind of picture ("photo of the drop rig", "what does
the app look like", "wiring sketch for ...") wants a figure back, and the
retriever then gives the figure lists more weight. The cues are ordinary
words for pictures, not words of any one manual, so they carry over to
manuals nobody has seen; a question without them is ranked as before.
"""

from __future__ import annotations

import re

VISUAL_CUES: tuple[str, ...] = (
    "chart",
    "diagram",
    "drawing",
    "figure",
    "fig",
    "graph",
    "illustration",
    "image",
    "look like",
    "looks like",
    "photo",
    "photograph",
    "picture",
    "plot",
    "schematic",
    "screen shot",
    "screenshot",
    "show me",
    "sketch",
)
"""Words and phrases that ask for a picture; plurals ("plots", "sketches") count too."""

_VISUAL = re.compile(
    r"\b(?:"
    + "|".join(re.escape(cue).replace(r"\ ", r"\s+") for cue in VISUAL_CUES)
    + r")(?:s|es)?\b",
    re.IGNORECASE,
)


def asks_for_visual(query: str) -> bool:
    """Whether a query asks for a picture rather than for text.

    Args:
        query: The query text.

    Returns:
        True when the query names a kind of picture (see :data:`VISUAL_CUES`).

    Example:
        >>> asks_for_visual("photo of the drop rig")
        True
        >>> asks_for_visual("what does the desktop app look like?")
        True
        >>> asks_for_visual("how do I calibrate the probe?")
        False
    """
    return _VISUAL.search(query) is not None
