"""Documents the rag tests make themselves: real PDFs (fpdf2), real DOCX (python-docx), bombs."""

from __future__ import annotations

import io
import zipfile
import zlib


def make_pdf(pages: list[str]) -> bytes:
    """A PDF written by a PDF library, one text page per item (empty string: blank page)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_bomb(unzipped_bytes: int) -> bytes:
    """A DOCX-shaped ZIP whose document.xml unzips to `unzipped_bytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * unzipped_bytes)
    return out.getvalue()


def pdf_bomb(unzipped_bytes: int) -> bytes:
    """A one-page PDF whose content stream inflates to `unzipped_bytes` (FlateDecode)."""
    stream = zlib.compress(b" " * unzipped_bytes, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
    ]
    body = io.BytesIO()
    body.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(body.tell())
        body.write(b"%d 0 obj\n" % i + obj + b"\nendobj\n")
    xref = body.tell()
    body.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        body.write(b"%010d 00000 n \n" % off)
    body.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
               % (len(objects) + 1, xref))
    return body.getvalue()


# A small labelled corpus: topic documents and questions whose answer is in one of them.
CORPUS = {
    "volcanoes.txt": "Volcanoes form where magma from the Earth's mantle reaches the surface. "
                     "Mount Etna in Sicily is one of the most active volcanoes in Europe. "
                     "Lava flows, ash clouds and pyroclastic flows are the main hazards.",
    "bread.md": "# Baking bread\n\nSourdough bread rises with a starter of wild yeast and "
                "lactic acid bacteria. Knead the dough, let it proof overnight, and bake it "
                "in a hot Dutch oven at 250 degrees Celsius.",
    "chess.html": "<html><head><title>Chess</title><script>var x=1;</script></head><body>"
                  "<h1>Chess openings</h1><p>The Sicilian Defence answers 1.e4 with c5. The "
                  "Queen's Gambit offers a pawn on c4 to gain central control.</p></body></html>",
    "photosynthesis.txt": "Photosynthesis converts light energy into chemical energy. Plants "
                          "use chlorophyll in their leaves to absorb sunlight, taking in carbon "
                          "dioxide and water and releasing oxygen and glucose.",
    "tides.txt": "Ocean tides are caused mainly by the gravitational pull of the Moon, with a "
                 "smaller effect from the Sun. Spring tides happen at new and full moon.",
    "python.md": "Python lists are mutable sequences; tuples are immutable. A dictionary maps "
                 "hashable keys to values, and list comprehensions build lists concisely.",
}
QUESTIONS = [
    ("Which volcano in Sicily is very active?", "volcanoes.txt"),
    ("What are the dangers of an eruption?", "volcanoes.txt"),
    ("How do I make sourdough rise?", "bread.md"),
    ("At what temperature should bread be baked?", "bread.md"),
    ("How does black respond to e4 in the Sicilian?", "chess.html"),
    ("What does the Queen's Gambit sacrifice?", "chess.html"),
    ("How do plants turn sunlight into food?", "photosynthesis.txt"),
    ("Which gas do leaves release?", "photosynthesis.txt"),
    ("What causes the tides of the sea?", "tides.txt"),
    ("When do spring tides occur?", "tides.txt"),
    ("Is a tuple mutable in Python?", "python.md"),
    ("What does a dictionary map keys to?", "python.md"),
]


def long_text(paragraphs: int, seed: int = 0) -> str:
    """Varied English-like text, enough to make many chunks."""
    import random

    rnd = random.Random(seed)
    words = ("river mountain engine protocol harvest library signal orbit garden theorem "
             "market winter copper canvas journey lantern circuit meadow archive compass "
             "falcon granite harbor lyric nebula quartz saddle timber velvet whistle").split()
    out = []
    for p in range(paragraphs):
        sentences = [" ".join(rnd.choice(words) for _ in range(rnd.randint(8, 16))).capitalize()
                     + "." for _ in range(6)]
        out.append(f"Section {p}. " + " ".join(sentences))
    return "\n\n".join(out)


def docx_paragraph_flood(paragraphs: int) -> bytes:
    """A real-looking DOCX whose body is `paragraphs` empty paragraphs (tiny once zipped)."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>'.encode())
            block = b"<w:p/>" * 100_000
            for _ in range(paragraphs // 100_000):
                part.write(block)
            part.write(b"</w:body></w:document>")
    return out.getvalue()


def html_tag_flood(tags: int) -> bytes:
    """HTML of `tags` nested-and-closed inline tags around no text."""
    return b"<!DOCTYPE html><html><body>" + b"<b><i></i></b>" * (tags // 2) + b"</body></html>"
