"""Tests of the exact-term shapes shared by the tokenizer and the query intent."""

from __future__ import annotations

import pytest

from multimodal_rag.terms import canonical_chord, normalize_chords


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("press [Shift]+[Ctrl] now", "press ctrl+shift now"),
        ("Ctrl+Shift+N", "ctrl+shift+n"),
        ("Shift+Ctrl+N", "ctrl+shift+n"),  # one order for the modifiers
        ("[Alt + S]", "alt+s"),
        ("[CTRL+F]", "ctrl+f"),
        ("CTRL-Click", "ctrl+click"),
        ("Alt-F4", "alt+f4"),
        ("Control + Option + Delete", "ctrl+alt+delete"),
        ("alt-text and shift-register", "alt-text and shift-register"),
        ("[Ctrl] alone", "[Ctrl] alone"),
        ("shiftCtrl+x", "shiftCtrl+x"),  # not at a word start
        ("no chords here", "no chords here"),
    ],
)
def test_normalize_chords(text: str, expected: str) -> None:
    assert normalize_chords(text) == expected


def test_canonical_chord_covers_the_written_span() -> None:
    assert canonical_chord("[Shift-A] more") == ("shift+a", 9)
    assert canonical_chord("Shift") is None
    assert canonical_chord("+Shift") is None
