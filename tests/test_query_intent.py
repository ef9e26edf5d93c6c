from __future__ import annotations

import pytest

from multimodal_rag.query_intent import asks_for_exact_term, asks_for_visual


@pytest.mark.parametrize(
    "query",
    [
        "photo of the drop rig",
        "Screenshot of the settings dialog",
        "what does the main window look like?",
        "it looks  like what?",  # phrases match across any whitespace
        "wiring sketches for the sensor",
        "plots of the decay with and without the core",
        "show me the radio panel",
        "Fig. 3 please",
    ],
)
def test_queries_naming_a_picture_ask_for_a_visual(query: str) -> None:
    assert asks_for_visual(query)


@pytest.mark.parametrize(
    "query",
    [
        "how do I calibrate the probe?",
        "which packages make the plotting work?",  # "plotting" is an activity, not a plot
        "I figured out the port, now what?",
        "configure the rotator",
        "photoelectric effect experiment",
        "how do I hide everything outside a round region of the image",  # the subject
        "write the disk image to a USB stick",
        "",
    ],
)
def test_other_queries_do_not(query: str) -> None:
    assert not asks_for_visual(query)


@pytest.mark.parametrize(
    "query",
    [
        "--overwrite-data-of-peer",
        "what does -h print",
        "explore.dat file format",
        "rigctl dtr_state=OFF syntax",
        "allowUIDProposalModification",
        "resistor between T19 and T20",
        "CDM20814 Setup.exe driver",
        "c-fill-target starting value",
        "edit /etc/fstab",
        'the "Enable Rules Hint" option',
        "what does Shift+Ctrl do",
        "press [Alt + S] to open the editor",
        "Ctrl-Z to undo",
        ".vyp files",
        "entries of the [[GENERAL]] section",
    ],
)
def test_queries_naming_an_exact_term(query: str) -> None:
    assert asks_for_exact_term(query)


@pytest.mark.parametrize(
    "query",
    [
        "how do I calibrate the probe?",
        "free-fall time with a 4.7uF capacitor and 10mm ball",  # quantities, one hyphen
        "e.g. the front panel, i.e. the one with knobs",
        "the on/off switch and the row/column cells",
        "what changed in version 1.2 of section 4.2.1?",
        "why is the ZENER box greyed out",  # capitals are emphasis as often as names
        "alt-text for images and the shift-register output",  # words, not chords
        "how do I shift the plot to the left",
        "see [1] for details",
        "",
    ],
)
def test_english_queries_do_not_name_exact_terms(query: str) -> None:
    assert not asks_for_exact_term(query)
