from __future__ import annotations

import pytest

from multimodal_rag.query_intent import asks_for_visual


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
        "",
    ],
)
def test_other_queries_do_not(query: str) -> None:
    assert not asks_for_visual(query)
