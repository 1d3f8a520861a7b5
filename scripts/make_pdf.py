#!/usr/bin/env python3
"""Write small, valid PDFs with real text, with no third-party packages.

Used to make the sample corpus in pipelines/data and the test fixtures, so every
PDF in the repository is made by the project itself.

    python3 scripts/make_pdf.py OUT.pdf "Title" "paragraph one" "paragraph two" ...

With SLUICE_PDF_ENCODING=BogusEncoding the font names an encoding that does not
exist. The file is still a well-formed PDF, but pdf-extract panics on it: the
test corpus uses it to prove a panicking parser lands in the dead-letter store.
"""
import sys
import textwrap


def escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(title: str, paragraphs: list[str], encoding: str = "WinAnsiEncoding") -> bytes:
    lines = [(18, title), (0, "")]
    for p in paragraphs:
        for line in textwrap.wrap(p, 80):
            lines.append((11, line))
        lines.append((0, ""))
    pages, page, y = [], [], 770
    for size, text in lines:
        step = 16 if size else 8
        if y - step < 60:
            pages.append(page)
            page, y = [], 770
        y -= step
        if size:
            page.append((size, y, text))
    pages.append(page)

    objects = []  # index 0 is object 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /%s >>" % encoding.encode())
    pages_id = len(objects) + 1 + 2 * len(pages)  # after all page + content objects
    page_ids = []
    for page in pages:
        ops = []
        for size, y, text in page:
            ops.append(f"BT /F1 {size} Tf 56 {y} Td ({escape(text)}) Tj ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_id, font, content)
            )
        )
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))) == pages_id
    info = add(b"<< /Title (%s) /Producer (sluice make_pdf.py) >>" % escape(title).encode("latin-1", "replace"))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref,
    )
    return bytes(out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "wb") as f:
        import os

        f.write(make_pdf(sys.argv[2], sys.argv[3:], os.environ.get("SLUICE_PDF_ENCODING", "WinAnsiEncoding")))
