"""Judge an upload's type by its bytes and extract its text with streaming parsers.

No parser builds a whole document tree: DOCX's XML and HTML are read as event streams, so
memory follows the text kept, not the markup. Each document also yields its title and
heading positions (the section path of every chunk). `services.sandbox` runs `extract` in a
child process with a memory and time limit on top of these bounds.
"""

from __future__ import annotations

import bisect
import io
import re
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from typing import Any

from services.errors import APIError

KINDS = ("pdf", "docx", "html", "text")
HTML_EXTS = (".html", ".htm", ".xhtml")
_SPACES = re.compile(rb"\s*")
# The first tag of an HTML document; what may come before it is skipped by _html_start.
_HTML_TAG = re.compile(rb"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
# The opening hashes of a markdown heading; the rest of its line is read by _heading_line.
_MD_HEADING_START = re.compile(r"^#{1,6}[ \t]", re.MULTILINE)
MAX_NAME_CHARS = 200
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass
class Limits:
    """The bounds extraction enforces (a plain object: it crosses into the sandbox)."""

    max_pdf_pages: int = 2000
    max_extracted_chars: int = 20_000_000
    max_docx_unzipped_bytes: int = 10_000_000
    timeout_s: float = 120.0


@dataclass
class Extracted:
    kind: str
    text: str
    page_starts: list[int] | None = field(default=None)  # char offset of each page's start
    title: str = ""
    # (char offset, level 1-6, heading text) in document order
    headings: list[tuple[int, int, str]] = field(default_factory=list)


def display_name(filename: str | None) -> str:
    """A safe label for an upload's name: last path part, no control chars, bounded length.

    The name is only ever shown and stored as payload; it never becomes a filesystem path.
    """
    raw = (filename or "").replace("\\", "/").split("/")[-1]
    name = _BAD_NAME_CHARS.sub("", unicodedata.normalize("NFC", raw)).strip().lstrip(".")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = name[:MAX_NAME_CHARS - len(ext) - 1] + ("." + ext if ext else "")
    return name or "document"


def unsupported(message: str) -> APIError:
    return APIError(415, message, code="unsupported_media_type", param="files")


def _after_spaces(data: bytes, pos: int) -> int:
    match = _SPACES.match(data, pos)  # always matches, maybe empty
    return match.end() if match else pos


def _html_start(head: bytes) -> bool:
    """Whether `head` opens an HTML document: whitespace, then HTML comments, then the first
    tag. Linear: no backtracking regex decides it (a comment may run to any later `-->`,
    which is what the regex `^\\s*(<!--.*?-->\\s*)*<tag` accepted, in exponential time)."""
    pos = _after_spaces(head, 0)
    if _HTML_TAG.match(head, pos):
        return True
    if not head.startswith(b"<!--", pos):
        return False
    end = head.find(b"-->", pos + 4)
    while end >= 0:
        if _HTML_TAG.match(head, _after_spaces(head, end + 3)):
            return True
        end = head.find(b"-->", end + 1)
    return False


def sniff(data: bytes, filename: str) -> str:
    """The document kind judged by content (magic bytes), the extension only breaking ties."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile as exc:
            raise APIError(422, "The ZIP container is corrupt.", code="corrupt_document",
                           param="files") from exc
        if "word/document.xml" in names:
            return "docx"
        raise unsupported("ZIP archives other than DOCX are not supported.")
    if b"\x00" in data[:1_000_000] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise unsupported("Binary content is not a supported document type "
                          "(txt, md, html, pdf, docx).")
    head = data[:4096].lstrip(b"\xef\xbb\xbf")
    if _html_start(head):
        return "html"
    if filename.lower().endswith(HTML_EXTS) and head.lstrip().startswith(b"<"):
        return "html"
    return "text"


def decode_text(data: bytes) -> str:
    """UTF-8 (or UTF-16 with a BOM), else latin-1 when it reads as text; binary answers 415."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise unsupported("The UTF-16 text does not decode.") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise unsupported("Text with NUL characters is not a supported document.")
    controls = sum(1 for c in text[:200_000] if ord(c) < 32 and c not in "\t\n\r\f\v")
    if controls > max(8, len(text[:200_000]) // 100):
        raise unsupported("The content looks binary, not text.")
    return text


def too_much_text(limit: int) -> APIError:
    return APIError(413, f"The document has more than {limit} characters of text.",
                    code="too_much_text", param="files")


def timed_out() -> APIError:
    return APIError(422, "Extracting the document took too long.", code="extraction_timeout",
                    param="files")


class _Text:
    """Text accumulated under the character budget and the deadline."""

    def __init__(self, limits: Limits, deadline: float) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limits.max_extracted_chars
        self.deadline = deadline
        self.headings: list[tuple[int, int, str]] = []
        self._ticks = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise too_much_text(self.limit)
        self.tick()

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % 4096 == 0 and time.monotonic() > self.deadline:
            raise timed_out()

    def text(self) -> str:
        return "".join(self.parts)


def _pdf(data: bytes, limits: Limits, deadline: float) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    out = _Text(limits, deadline)
    starts: list[int] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise APIError(422, "Encrypted PDFs are not supported.", code="encrypted_document",
                           param="files")
        count = len(reader.pages)
        if count > limits.max_pdf_pages:
            raise APIError(413, f"The PDF has {count} pages; the limit is "
                                f"{limits.max_pdf_pages}.", code="too_many_pages",
                           param="files")
        title = str((reader.metadata or {}).get("/Title") or "").strip()[:300]
        for page in reader.pages:
            if time.monotonic() > deadline:
                raise timed_out()
            starts.append(out.size)
            # extract_text swallows decoding errors; reading the stream first surfaces a bomb.
            page.get_contents()
            out.add((page.extract_text() or "").strip() + "\n\n")
    except LimitReachedError as exc:
        raise APIError(413, "The PDF decompresses beyond the allowed size.",
                       code="decompression_bomb", param="files") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError, zipfile.BadZipFile) as exc:
        raise APIError(422, f"The PDF could not be read: {type(exc).__name__}.",
                       code="corrupt_document", param="files") from exc
    return Extracted("pdf", out.text(), starts, title)


def _docx(data: bytes, limits: Limits, deadline: float) -> Extracted:
    """Paragraph and table text of word/document.xml, read as a stream of XML events."""
    from lxml import etree

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        # A member never inflates past its declared size (zipfile stops there and the CRC
        # check fails), so the declared size bounds the bytes the parser can see. Other parts
        # (images) are never read.
        total = archive.getinfo("word/document.xml").file_size
        if total > limits.max_docx_unzipped_bytes:
            raise APIError(413, f"The DOCX unzips to {total} bytes; the limit is "
                                f"{limits.max_docx_unzipped_bytes}.", code="decompression_bomb",
                           param="files")
        out = _Text(limits, deadline)
        with archive.open("word/document.xml") as stream:
            # Only the end of paragraphs and table rows reach Python; the rest stays in C.
            events = etree.iterparse(stream, events=("end",), tag=(W + "p", W + "tr"),
                                     resolve_entities=False, no_network=True, huge_tree=False)
            for _, element in events:
                out.tick()
                if element.tag == W + "tr":
                    cells = [_runs(p) for tc in element.iterchildren(W + "tc")
                             for p in tc.iterchildren(W + "p")]
                    if any(cells):
                        out.add("\t".join(c for c in cells if c) + "\n")
                elif element.getparent().tag == W + "tc":
                    continue  # read with its row
                else:
                    line = _runs(element)
                    if line:
                        style = element.find(f"{W}pPr/{W}pStyle")
                        level = _heading_level(style.get(W + "val") or "") \
                            if style is not None else 0
                        if level:
                            out.headings.append((out.size, level, line[:200]))
                        out.add(line + "\n")
                # Drop what was read: memory follows the text kept, not the markup.
                element.clear(keep_tail=False)
                parent = element.getparent()
                if parent is not None and parent.tag == W + "body":
                    while element.getprevious() is not None:
                        del parent[0]
    except APIError:
        raise
    except (etree.XMLSyntaxError, zipfile.BadZipFile, KeyError, OSError, EOFError,
            ValueError) as exc:
        raise APIError(422, f"The DOCX could not be read: {type(exc).__name__}.",
                       code="corrupt_document", param="files") from exc
    title = _docx_title(archive)
    return Extracted("docx", out.text(), None, title, out.headings)


def _runs(paragraph: Any) -> str:
    return "".join(t.text or "" if t.tag == W + "t" else "\t"
                   for t in paragraph.iter(W + "t", W + "tab")).strip()


def _heading_level(style: str) -> int:
    match = re.fullmatch(r"(?i)(?:heading|berschrift|titre)\s*([1-6])", style.strip())
    if match:
        return int(match.group(1))
    return 1 if style.lower() == "title" else 0


def _docx_title(archive: zipfile.ZipFile) -> str:
    try:
        info = archive.getinfo("docProps/core.xml")
        if info.file_size > 100_000:
            return ""
        found = re.search(rb"<dc:title>([^<]{1,300})</dc:title>", archive.read(info))
        return found.group(1).decode("utf-8", "replace").strip() if found else ""
    except (KeyError, zipfile.BadZipFile, OSError):
        return ""


BLOCK_TAGS = frozenset(
    "address article aside blockquote body br dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table td th tr ul "
    "caption summary details".split())
SKIP_TAGS = frozenset(("script", "style", "noscript", "template", "head", "svg", "math"))
HEADINGS = {f"h{i}": i for i in range(1, 7)}


class _HtmlTarget:
    """lxml parser target: receives events and keeps only text, never a tree."""

    def __init__(self, out: _Text) -> None:
        self.out = out
        self.skip = 0
        self.in_title = False
        self.title: list[str] = []
        self.heading: tuple[int, int] | None = None  # (level, offset where it started)
        self.heading_text: list[str] = []

    def start(self, tag: Any, attrib: Any) -> None:
        self.out.tick()
        tag = str(tag).lower()
        if tag == "title":
            self.in_title = True
        elif tag in SKIP_TAGS:
            self.skip += 1
        if tag in BLOCK_TAGS and not self.skip:
            self.out.add("\n")
        if tag in HEADINGS and not self.skip:
            self.heading, self.heading_text = (HEADINGS[tag], self.out.size), []

    def end(self, tag: Any) -> None:
        self.out.tick()
        tag = str(tag).lower()
        if tag == "title":
            self.in_title = False
        elif tag in SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        if tag in HEADINGS and self.heading is not None:
            text = " ".join("".join(self.heading_text).split())[:200]
            if text:
                self.out.headings.append((self.heading[1], self.heading[0], text))
            self.heading = None
        if tag in BLOCK_TAGS and not self.skip:
            self.out.add("\n")

    def data(self, text: str) -> None:
        if self.in_title:
            if sum(map(len, self.title)) < 300:
                self.title.append(text)
        elif not self.skip:
            self.out.add(text)
            if self.heading is not None and len(self.heading_text) < 50:
                self.heading_text.append(text)

    def comment(self, text: str) -> None:
        pass

    def close(self) -> str:
        return " ".join("".join(self.title).split())


def _html(data: bytes, limits: Limits, deadline: float) -> Extracted:
    from lxml import etree

    text = decode_text(data)
    out = _Text(limits, deadline)
    target = _HtmlTarget(out)
    parser = etree.HTMLParser(target=target, no_network=True, remove_comments=True,
                              huge_tree=False)
    step = 1 << 16
    for pos in range(0, len(text), step):
        parser.feed(text[pos:pos + step])
        out.tick()
        if time.monotonic() > deadline:
            raise timed_out()
    title = parser.close()
    raw = out.text()
    # Collapse runs of blank lines and trailing spaces; keep heading offsets in step.
    cleaned, heads = _collapse(raw, out.headings)
    return Extracted("html", cleaned, None, title if isinstance(title, str) else "", heads)


def _collapse(raw: str, headings: list[tuple[int, int, str]]
              ) -> tuple[str, list[tuple[int, int, str]]]:
    """Lines with their spaces collapsed, runs of blank lines made one; headings follow."""
    parts: list[str] = []
    mapping: list[tuple[int, int]] = []  # (raw offset, cleaned offset) of each kept line
    size = 0
    blank = True
    for match in re.finditer(r"[^\n]*\n?", raw):
        line = match.group(0)
        if not line:
            break
        stripped = " ".join(line.split())
        if not stripped:
            if not blank:
                parts.append("\n")
                size += 1
                blank = True
            continue
        mapping.append((match.start(), size))
        parts.append(stripped + "\n")
        size += len(stripped) + 1
        blank = False
    raws = [m[0] for m in mapping]
    heads = []
    for offset, level, text in headings:
        i = bisect.bisect_left(raws, offset)
        if i < len(mapping):
            heads.append((mapping[i][1], level, text))
    return "".join(parts).rstrip("\n") + "\n", heads


def _heading_line(line: str) -> str | None:
    """The text of an ATX heading line after its hashes (it starts with a space or tab), as
    `[ \\t]+(.+?)[ \\t#]*$` captured it, or None where that did not match; linear."""
    rest = line.lstrip(" \t")
    if not rest:  # only blanks: the last one is the text, if one is left before it
        return line[-1] if len(line) > 1 else None
    return rest.rstrip(" \t#") or rest[0]


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    headings: list[tuple[int, int, str]] = []
    for match in _MD_HEADING_START.finditer(text):
        end = text.find("\n", match.end())
        heading = _heading_line(text[match.end() - 1:end if end >= 0 else len(text)])
        if heading is not None:
            headings.append((match.start(), match.end() - match.start() - 1,
                             heading.strip()[:200]))
            if len(headings) == 10_000:
                break
    return headings


def extract(data: bytes, filename: str, limits: Limits) -> Extracted:
    """Sniff and extract one upload (blocking; `services.sandbox.extract_bounded` isolates it).

    Raises:
        APIError: 415 unsupported type, 413 past a size bound, 422 unreadable or no text.
    """
    deadline = time.monotonic() + limits.timeout_s
    kind = sniff(data, filename)
    if kind == "pdf":
        result = _pdf(data, limits, deadline)
    elif kind == "docx":
        result = _docx(data, limits, deadline)
    elif kind == "html":
        result = _html(data, limits, deadline)
    else:
        text = decode_text(data)
        result = Extracted("text", text, headings=_markdown_headings(text))
    if len(result.text) > limits.max_extracted_chars:
        raise too_much_text(limits.max_extracted_chars)
    if not result.text.strip():
        raise APIError(422, "No text could be extracted from the document.", code="no_text",
                       param="files")
    return result
