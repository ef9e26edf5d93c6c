# mypy: disable-error-code="no-untyped-call"
"""A small sample manual for the example notebooks and the chatbot, built with PyMuPDF.

The notebooks run anywhere: they use the PDF named by the environment variable
``MMRAG_MANUAL`` when it is set, and otherwise build this seven-page manual of
an imaginary "AquaFlow 200" garden pump. It has real text (seven sections, a
maintenance procedure), a raster photo-like figure with a caption, and a
vector wiring diagram with labels drawn inside it — what the loader finds in a
real manual.

Example:
    >>> from sample_manual import manual_pdf   # doctest: +SKIP
    >>> pdf = manual_pdf("work")               # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_FIGURES", "make_sample_manual", "manual_pdf"]

SAMPLE_NAME = "aquaflow-200-manual.pdf"
SAMPLE_FIGURES = {
    "Figure 1": "Front view of the AquaFlow 200 pump with its control panel.",
    "Figure 2": "Wiring diagram of the motor, capacitor and float switch.",
}
"""Figure label -> caption, as printed in the sample manual."""

_PAGES = [
    (
        "1 Introduction",
        [
            "The AquaFlow 200 is an electric garden pump for rain water tanks and wells. "
            "It moves up to 3,200 litres per hour and lifts water up to 35 metres.",
            "The control panel on the front of the pump carries the power switch, the "
            "pressure gauge and the red overload indicator. Figure 1 shows the front view.",
        ],
    ),
    (
        "2 Safety",
        [
            "Never let children operate the pump. Keep the power cable away from sharp edges "
            "and hot surfaces, and never carry the pump by its cable.",
            "The pump is not suitable for salt water, petrol, oil or other flammable liquids. "
            "Connect it only to a socket protected by a residual current device of 30 mA.",
        ],
    ),
    (
        "3 Installation",
        [
            "Place the pump on a firm, level surface above the highest water level, protected "
            "from rain and flooding. Use a suction hose with a non-return valve and a strainer.",
            "Before the first start, fill the pump housing with water through the filling "
            "screw until it overflows. The pump must never be started dry.",
        ],
    ),
    (
        "4 Electrical connection",
        [
            "Only a qualified electrician may open the terminal box. The motor, the start "
            "capacitor and the float switch are wired as shown in Figure 2.",
            "The float switch stops the motor when the water level falls below the intake, "
            "so the pump never runs dry. Connect the brown wire to terminal L and the blue "
            "wire to terminal N; the green-yellow wire is the protective earth.",
        ],
    ),
    (
        "5 Maintenance",
        [
            "Clean the intake filter every month: switch the pump off, unscrew the filter "
            "cap anticlockwise, rinse the filter basket under running water and screw the "
            "cap back on hand-tight.",
            "Before winter, drain the pump through the drain plug at the bottom of the "
            "housing, because frozen water cracks the pump housing. Store it in a dry room.",
        ],
    ),
    (
        "6 Troubleshooting",
        [
            "The motor hums but does not start: the start capacitor is faulty; have it "
            "replaced. The pump runs but delivers no water: refill the housing and check the "
            "suction hose for leaks.",
            "The red overload indicator lights: the motor was too hot. Let it cool for "
            "fifteen minutes, check the intake filter for blockage, then restart the pump.",
        ],
    ),
    (
        "7 Technical data",
        [
            "Rated voltage 230 V, 50 Hz. Power consumption 1,100 W. Maximum flow 3,200 l/h. "
            "Maximum head 35 m. Maximum suction height 8 m. Weight 11.5 kg.",
            "Protection class IPX4. Maximum water temperature 35 degrees Celsius. "
            "Hose connection 1 inch thread.",
        ],
    ),
]
# Section title -> the figure drawn on its page.
_FIGURE_PAGES = {"1 Introduction": "Figure 1", "4 Electrical connection": "Figure 2"}


def _photo_png() -> bytes:
    """A photo-like raster image: a blue pump body, a dark panel and a round gauge."""
    import pymupdf

    width, height = 240, 160
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, width, height), False)
    pix.set_rect(pix.irect, (235, 240, 245))
    pix.set_rect(pymupdf.IRect(30, 30, 210, 140), (30, 90, 170))
    pix.set_rect(pymupdf.IRect(60, 45, 180, 80), (40, 40, 45))
    pix.set_rect(pymupdf.IRect(150, 52, 170, 72), (210, 40, 40))
    for y in range(95, 135):
        for x in range(95, 145):
            if (x - 120) ** 2 + (y - 115) ** 2 <= 18**2:
                pix.set_pixel(x, y, (245, 245, 245))
    return bytes(pix.tobytes("png"))


def _wiring_diagram(page: Any, top: float) -> float:
    """Draw the wiring diagram (boxes, lines, labels) and return its bottom."""
    import pymupdf

    shape = page.new_shape()
    boxes = {
        "MOTOR": pymupdf.Rect(90, top + 20, 190, top + 70),
        "CAPACITOR": pymupdf.Rect(250, top + 20, 350, top + 70),
        "FLOAT SWITCH": pymupdf.Rect(410, top + 20, 520, top + 70),
    }
    for box in boxes.values():
        shape.draw_rect(box)
    shape.draw_line(pymupdf.Point(190, top + 45), pymupdf.Point(250, top + 45))
    shape.draw_line(pymupdf.Point(350, top + 45), pymupdf.Point(410, top + 45))
    shape.draw_line(pymupdf.Point(140, top + 70), pymupdf.Point(140, top + 110))
    shape.draw_line(pymupdf.Point(140, top + 110), pymupdf.Point(465, top + 110))
    shape.draw_line(pymupdf.Point(465, top + 110), pymupdf.Point(465, top + 70))
    shape.finish(color=(0, 0, 0), width=1.2)
    shape.commit()
    for label, box in boxes.items():
        page.insert_text((box.x0 + 8, box.y0 + 30), label, fontsize=9)
    page.insert_text((290, top + 125), "L   N   PE", fontsize=9)
    return top + 135


def make_sample_manual(path: str | Path) -> Path:
    """Write the seven-page sample manual to ``path`` and return it."""
    import pymupdf

    path = Path(path)
    doc = pymupdf.open()
    for number, (title, paragraphs) in enumerate(_PAGES, start=1):
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 50), "AquaFlow 200 Operating Manual", fontsize=8)
        page.insert_text((72, 90), title, fontsize=16, fontname="hebo")
        y = 110.0
        for text in paragraphs:
            rect = pymupdf.Rect(72, y, 523, y + 90)
            page.insert_textbox(rect, text, fontsize=11)
            y += 80
        figure = _FIGURE_PAGES.get(title)
        if figure == "Figure 1":
            page.insert_image(pymupdf.Rect(150, y, 450, y + 200), stream=_photo_png())
            page.insert_text((150, y + 218), f"Figure 1: {SAMPLE_FIGURES['Figure 1']}", fontsize=9)
        elif figure == "Figure 2":
            bottom = _wiring_diagram(page, y)
            page.insert_text(
                (120, bottom + 15), f"Figure 2: {SAMPLE_FIGURES['Figure 2']}", fontsize=9
            )
        page.insert_text((292, 810), str(number), fontsize=8)
    doc.set_toc([[1, title, i] for i, (title, _) in enumerate(_PAGES, start=1)])
    doc.save(path, garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return path


def manual_pdf(work_dir: str | Path) -> Path:
    """The manual to use: ``$MMRAG_MANUAL`` when set, else the sample built in ``work_dir``."""
    chosen = os.environ.get("MMRAG_MANUAL")
    if chosen:
        found = Path(chosen).expanduser()
        if not found.is_file():
            raise FileNotFoundError(f"MMRAG_MANUAL={chosen} is not a file")
        return found
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    return make_sample_manual(work / SAMPLE_NAME)
