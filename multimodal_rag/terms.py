"""Shapes of exact terms shared by the keyword tokenizer and the query-intent rules.

Manuals write one key chord many ways: ``Ctrl+Shift+N``, ``[Shift]+[Ctrl]``,
``[Alt + S]``, ``CTRL-Z``. :func:`normalize_chords` rewrites each of them to one
canonical word (modifiers in a fixed order, then the key, joined by ``+``:
``ctrl+shift+n``, ``ctrl+shift``, ``alt+s``, ``ctrl+z``), so a query written one
way matches a manual written another. A hyphen joins a chord only when what
follows it is a modifier, a single character, a function key or a named key
(``Ctrl-Click``, ``Shift-A``, ``Alt-F4``), never an ordinary word: ``alt-text``
and ``shift-register`` stay words.
"""

from __future__ import annotations

import re

__all__ = ["KEY_CHORD", "normalize_chords"]

_MODIFIERS: dict[str, str] = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "strg": "ctrl",
    "alt": "alt",
    "altgr": "altgr",
    "option": "alt",
    "shift": "shift",
    "cmd": "cmd",
    "command": "cmd",
    "meta": "meta",
    "super": "super",
    "fn": "fn",
}
_ORDER = {name: i for i, name in enumerate(("ctrl", "alt", "altgr", "shift", "cmd", "meta"))}
_NAMED_KEYS = frozenset(
    "enter return tab del delete esc escape space home end pgup pgdn pageup pagedown up down "
    "left right ins insert backspace click print pause".split()
)
_MOD = "|".join(sorted(_MODIFIERS, key=len, reverse=True))
# A modifier, then one or more "+ key" / "-key" steps; brackets may wrap each key or the
# whole chord, spaces may surround a "+".
KEY_CHORD = re.compile(
    rf"(?<!\w)\[?(?:{_MOD})\]?(?:\s*\+\s*\[?[^\W_]{{1,12}}\]?|-\[?[^\W_]{{1,12}}\]?)+",
    re.IGNORECASE,
)
"""Where a text may hold a key chord (confirm with :func:`canonical_chord`)."""
_STEP = re.compile(r"(\+|-)?\s*\[?([^\W_]+)\]?")


def canonical_chord(written: str) -> tuple[str, int] | None:
    """The canonical form of a chord and how many characters of ``written`` it covers.

    Example:
        >>> canonical_chord("[Shift]+[Ctrl]")
        ('ctrl+shift', 14)
        >>> canonical_chord("alt-text") is None
        True
    """
    mods: list[str] = []
    key: str | None = None
    end = 0
    for i, m in enumerate(_STEP.finditer(written)):
        sep, name = m.group(1), m.group(2).lower()
        if i == 0 and sep is not None:
            return None
        if i > 0 and sep is None:
            break
        is_mod = name in _MODIFIERS
        if sep == "-" and not (
            is_mod or len(name) == 1 or name in _NAMED_KEYS or re.fullmatch(r"f\d{1,2}", name)
        ):
            break
        end = m.end()
        if is_mod and key is None:
            mods.append(_MODIFIERS[name])
            continue
        key = name
        break
    chord = sorted(dict.fromkeys(mods), key=lambda n: _ORDER.get(n, len(_ORDER)))
    if key is None and len(chord) < 2:
        return None
    if end < len(written) and written[end] == "]":
        end += 1
    return "+".join([*chord, key] if key else chord), end


def normalize_chords(text: str) -> str:
    """Rewrite every key chord in ``text`` to its canonical word (see the module docstring).

    Args:
        text: Any text.

    Returns:
        The text with chords replaced; everything else unchanged.

    Example:
        >>> normalize_chords("press [Shift]+[Ctrl] or [Alt + S], then CTRL-Z")
        'press ctrl+shift or alt+s, then ctrl+z'
    """

    def repl(m: re.Match[str]) -> str:
        found = canonical_chord(m.group(0))
        if found is None:
            return m.group(0)
        chord, end = found
        return chord + m.group(0)[end:]

    return KEY_CHORD.sub(repl, text)
