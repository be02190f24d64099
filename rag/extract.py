"""Judge an upload's type by its bytes and extract its text, bounded in size and time."""

from __future__ import annotations

import io
import re
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field

from services.errors import APIError

from .config import Settings

KINDS = ("pdf", "docx", "html", "text")
HTML_EXTS = (".html", ".htm", ".xhtml")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
                         re.IGNORECASE | re.DOTALL)
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
MAX_NAME_CHARS = 200


@dataclass
class Extracted:
    kind: str
    text: str
    page_starts: list[int] | None = field(default=None)  # char offset of each page's start


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
    if _HTML_START.match(head):
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


def _pdf(data: bytes, settings: Settings, deadline: float) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise APIError(422, "Encrypted PDFs are not supported.", code="encrypted_document",
                           param="files")
        count = len(reader.pages)
        if count > settings.max_pdf_pages:
            raise APIError(413, f"The PDF has {count} pages; the limit is "
                                f"{settings.max_pdf_pages}.", code="too_many_pages",
                           param="files")
        parts: list[str] = []
        starts: list[int] = []
        size = 0
        for page in reader.pages:
            if time.monotonic() > deadline:
                raise APIError(422, "Extracting the PDF took too long.",
                               code="extraction_timeout", param="files")
            starts.append(size)
            # extract_text swallows decoding errors; reading the stream first surfaces a bomb.
            page.get_contents()
            text = (page.extract_text() or "").strip() + "\n\n"
            size += len(text)
            if size > settings.max_extracted_chars:
                raise _too_much_text(settings)
            parts.append(text)
    except LimitReachedError as exc:
        raise APIError(413, "The PDF decompresses beyond the allowed size.",
                       code="decompression_bomb", param="files") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError, zipfile.BadZipFile) as exc:
        raise APIError(422, f"The PDF could not be read: {type(exc).__name__}.",
                       code="corrupt_document", param="files") from exc
    return Extracted("pdf", "".join(parts), starts)


def _docx(data: bytes, settings: Settings) -> Extracted:
    import docx

    archive = zipfile.ZipFile(io.BytesIO(data))
    # zipfile stops each member at its declared size, so the declared total bounds memory.
    total = sum(info.file_size for info in archive.infolist())
    if total > settings.max_docx_unzipped_bytes:
        raise APIError(413, f"The DOCX unzips to {total} bytes; the limit is "
                            f"{settings.max_docx_unzipped_bytes}.", code="decompression_bomb",
                       param="files")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for broken packages
        raise APIError(422, f"The DOCX could not be read: {type(exc).__name__}.",
                       code="corrupt_document", param="files") from exc
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append("\t".join(cell.text for cell in row.cells))
    return Extracted("docx", "\n".join(lines))


def _html(data: bytes) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    text = soup.get_text("\n")
    return Extracted("html", re.sub(r"\n\s*\n+", "\n\n", text))


def _too_much_text(settings: Settings) -> APIError:
    return APIError(413, f"The document has more than {settings.max_extracted_chars} characters "
                         "of text.", code="too_much_text", param="files")


def extract(data: bytes, filename: str, settings: Settings) -> Extracted:
    """Sniff and extract one upload (blocking: call from a worker thread).

    Raises:
        APIError: 415 unsupported type, 413 past a size bound, 422 unreadable or no text.
    """
    deadline = time.monotonic() + settings.extract_timeout_s
    kind = sniff(data, filename)
    if kind == "pdf":
        result = _pdf(data, settings, deadline)
    elif kind == "docx":
        result = _docx(data, settings)
    elif kind == "html":
        result = _html(data)
    else:
        result = Extracted("text", decode_text(data))
    if len(result.text) > settings.max_extracted_chars:
        raise _too_much_text(settings)
    if not result.text.strip():
        raise APIError(422, "No text could be extracted from the document.", code="no_text",
                       param="files")
    return result
