"""What a query asks for, read from generic English cue words.

A question that names a kind of picture ("photo of the drop rig", "what does
the app look like", "wiring sketch for ...") wants a figure back, and the
retriever then gives the figure lists more weight. The cues are ordinary
words for pictures, not words of any one manual, so they carry over to
manuals nobody has seen; a question without them is ranked as before.
"""

from __future__ import annotations

import re

from .terms import KEY_CHORD, canonical_chord

VISUAL_CUES: tuple[str, ...] = (
    "chart",
    "diagram",
    "drawing",
    "figure",
    "fig",
    "graph",
    "illustration",
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
"""Words and phrases that ask for a picture; plurals ("plots", "sketches") count too.

"image" is not one: in imaging software, disk images and image files it names the
subject, not a picture of it ("show the image at its physical size").
"""

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


# Shapes of words that are names in a manual rather than English: option flags
# (--force, -h), file names and dotted names (drbd.conf, eyes.py, v4.3), paths
# (/etc/fstab), names with _ or = (dtr_state=OFF), camelCase (allowUIDProposal),
# letters and digits run together (T19, 1N4148, CDM20814) and words of three or more
# hyphenated parts (c-fill-target), file extensions (.vyp), section names in brackets
# ([[GENERAL]]) and key chords (Ctrl+Shift+N, [Alt + S], CTRL-Z). Text embeddings blur
# such tokens; BM25 matches them exactly.
_OPTION = re.compile(r"^--?[^\W\d_][\w-]*$")
_JOINED = re.compile(r"[^\W_][.=][^\W_]")  # not "/": row/column, and/or are English
_CAMEL = re.compile(r"[a-z][A-Z]")
_LETTER_DIGIT = re.compile(r"[^\W\d_]\d|\d[^\W\d_]")
_UNITS = re.compile(r"^\d+(?:[.,]\d+)?[a-zA-Zµ°]{1,3}$")  # 10mm, 4.7uF, 50Hz: quantities
_STRIP = "\"'`“”‘’()[]{}<>,;:!?"
_EXTENSION = re.compile(r"^\.[^\W\d_][^\W_]{0,5}$")
_BRACKETED = re.compile(r"\[\[?[^\W\d][\w.-]*\]\]?")


def _is_name(word: str) -> bool:
    word = word.strip(_STRIP).rstrip(".")
    if len(word) < 2 or not any(c.isalpha() for c in word) or _UNITS.match(word):
        return False
    if _OPTION.match(word) or "_" in word.strip("_") or word.startswith(("/", "~/")):
        return True
    if _JOINED.search(word):
        # "e.g", "i.e", "U.S": dotted single letters are abbreviations, not names.
        return any(len(part) > 1 for part in re.split(r"[.=]", word))
    if _CAMEL.search(word) or word.count("-") >= 2:
        return True
    return bool(_LETTER_DIGIT.search(word))


def asks_for_exact_term(query: str) -> bool:
    """Whether a query names something to be matched exactly (an option, file, code, pin).

    Args:
        query: The query text.

    Returns:
        True when a word of the query has the shape of a name rather than of
        English (see the shapes listed above), or the query quotes a phrase.

    Example:
        >>> asks_for_exact_term("--overwrite-data-of-peer")
        True
        >>> asks_for_exact_term("resistor between T19 and T20")
        True
        >>> asks_for_exact_term("what does Shift+Ctrl do")
        True
        >>> asks_for_exact_term("why does the free-fall time come out 4.7ms too long?")
        False
    """
    if re.search(r"[\"“][^\"”]{2,}[\"”]", query) or _BRACKETED.search(query):
        return True
    if any(canonical_chord(m.group(0)) for m in KEY_CHORD.finditer(query)):
        return True
    if any(_EXTENSION.match(word.strip(_STRIP)) for word in query.split()):
        return True
    return any(_is_name(word) for word in query.split())
