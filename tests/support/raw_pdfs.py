"""Hand-written PDFs with one precise defect each, for tests of the loader's error paths.

PyMuPDF repairs or refuses to write most broken structures, so these files are
assembled byte by byte: numbered objects, a correct cross-reference table and a
trailer, with the defect placed in one object.

Example:
    >>> pdf = page_tree_cycle_pdf()  # doctest: +SKIP
    >>> (tmp_path / "cycle.pdf").write_bytes(pdf)  # doctest: +SKIP
"""

from __future__ import annotations

import zlib

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents 4 0 R"
    b" /Resources << /Font << /F1 5 0 R >> %s >> >>"
)


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF whose object ``i`` (1-based) is ``objects[i-1]``; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), extra, data)


def _text(words: str) -> bytes:
    return _stream(b"BT /F1 12 Tf 20 250 Td (%s) Tj ET" % words.encode("ascii"))


def one_page_pdf(words: str = "A plain page of text.", *, kids: bytes = b"[3 0 R]") -> bytes:
    """A one-page PDF; ``kids`` replaces the page tree's /Kids (with /Count 1)."""
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids %s /Count 1 >>" % kids,
            _PAGE % b"",
            _text(words),
            _FONT,
        ]
    )


def page_tree_cycle_pdf() -> bytes:
    """Page 1 is fine; the tree's second kid is a node whose only kid is the root again."""
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>",
            _PAGE % b"",
            _text("The first page reads fine."),
            _FONT,
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    )


def page_count_pdf(count: bytes) -> bytes:
    """One real page under a page tree that claims ``/Count count`` pages."""
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count %s >>" % count,
            _PAGE % b"",
            _text("A page under a lying page count."),
            _FONT,
        ]
    )


def pixel_bomb_pdf(width: int, height: int) -> bytes:
    """A page showing a ``width`` x ``height`` RGB image of zeros, a few MB compressed.

    Decoded, the image takes ``3 * width * height`` bytes; its header says so.
    """
    packer = zlib.compressobj(1)
    row = bytes(3 * width)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    image = _stream(
        data,
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB"
        b" /BitsPerComponent 8 /Filter /FlateDecode" % (width, height),
    )
    content = b"q 200 0 0 200 50 20 cm /Im1 Do Q BT /F1 12 Tf 20 250 Td (Figure 1: A bomb.) Tj ET"
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            _PAGE % b"/XObject << /Im1 6 0 R >>",
            _stream(content),
            _FONT,
            image,
        ]
    )
