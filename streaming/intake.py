"""What an attached file is, decided by its bytes, and what chatsite keeps of it.

``read(data, name)`` looks at the content only. The name is for two things: it may refuse
what the content does not bear out (a name that says image, such as ``.png``, on bytes that
are no PNG, JPEG, WebP or GIF; any ``.svg``), so nobody finds their "image" taken as text;
and the messages, which name the file as its owner gave it. Neither the name nor the content
is ever logged (pypdf's own warnings, which may quote a file, are kept out of the logs by
streaming/logs.py).

    kind   the bytes                     what is kept
    image  a PNG, JPEG, WebP or GIF      decoded by Pillow, the EXIF orientation applied, and
           signature, decoded by that    written anew: PNG as PNG, JPEG as JPEG and WebP as
           format's Pillow plugin only   WebP (quality 85, then 70), GIF as a PNG of its first
                                         frame (every format: its first frame). Nothing of the
                                         file but its pixels is written: no EXIF (GPS), XMP,
                                         comment, PNG text chunk, nor ICC profile (colours are
                                         then read as sRGB). At most ATTACH_IMAGE_MAX_SIDE on
                                         its longest side and ATTACH_IMAGE_MAX_BYTES: smaller
                                         by a quarter at a time until it fits.
    pdf    starts with ``%PDF-``         as uploaded; its text extracted by pypdf, from the
                                         first MAX_PDF_PAGES pages
    text   UTF-8 without NUL             as uploaded (served only as text/plain or as a
                                         download, never rendered, so HTML is text too); its
                                         text without a byte order mark

Anything else is refused (`AttachmentRefused`, with a `reason` for the metrics), and so is
an image of more than ATTACH_IMAGE_MAX_PIXELS pixels, before it is decoded: a few kilobytes
of PNG can declare gigabytes of pixels. No file larger than ATTACH_MAX_BYTES is looked at.
"""

import codecs
import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from itertools import islice
from typing import Literal

from django.conf import settings
from PIL import Image, ImageOps
from pypdf import PasswordType, PdfReader

from streaming.exceptions import AttachmentRefused

#: What read() takes, in the words every "not accepted" message ends with.
ACCEPTED = "images (PNG, JPEG, WebP, GIF), PDF, and UTF-8 text or source files"
#: Pages of a PDF whose text is read; the rest are not (no model takes so much at once).
MAX_PDF_PAGES = 500
#: The qualities a JPEG or WebP is written at: the first, then the next if it is too large.
LOSSY_QUALITIES = (85, 70)
#: An image is made no smaller than this on its longest side to fit ATTACH_IMAGE_MAX_BYTES.
MIN_SIDE = 64
# As git tells a binary file from text: a NUL among its first 8000 bytes.
_BINARY_SNIFF = 8000
# Names that promise an image: one whose bytes are not an accepted raster is refused.
_IMAGE_SUFFIXES = frozenset(
    {
        *("png", "apng", "gif", "webp", "jpg", "jpeg", "jpe", "jfif"),
        *("bmp", "tif", "tiff", "heic", "heif", "avif", "ico"),
    }
)
_SVG_SUFFIXES = frozenset(("svg", "svgz"))
# Before an SVG's root element: white space, an XML declaration, comments, a doctype.
_XML_PROLOG = re.compile(
    r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)", re.S | re.I
)
_SVG_ROOT = re.compile(r"\s*<(?:\w+:)?svg[\s/>]", re.I)


@dataclass(frozen=True)
class Intake:
    """An attached file as chatsite keeps it."""

    kind: Literal["image", "text", "pdf"]
    """What it is, by its content."""
    content_type: str
    """What it is served as: image/png, image/jpeg, image/webp, text/plain; charset=utf-8
    or application/pdf."""
    extension: str
    """The stored file's extension (after a random name): .png, .jpg, .webp, .txt, .pdf."""
    data: bytes
    """The bytes to store: an image as written anew, a text or PDF as uploaded."""
    text: str
    """What the model is sent of a document: a text file's text, a PDF's extracted text;
    "" for an image."""
    width: int | None
    """An image's width in pixels, as kept; None for a document."""
    height: int | None
    """An image's height in pixels, as kept; None for a document."""
    sha256: str
    """The hex SHA-256 of `data`."""


@dataclass(frozen=True)
class _Raster:
    """An accepted image format: how Pillow opens it and how chatsite writes it."""

    opened_as: str
    written_as: str
    content_type: str
    extension: str


_PNG = _Raster("PNG", "PNG", "image/png", ".png")
_JPEG = _Raster("JPEG", "JPEG", "image/jpeg", ".jpg")
_WEBP = _Raster("WEBP", "WEBP", "image/webp", ".webp")
_GIF = _Raster("GIF", "PNG", "image/png", ".png")


def read(data: bytes, name: str) -> Intake:
    """What the file ``data`` is and what chatsite keeps of it, or AttachmentRefused saying
    why not; ``name`` is the file's name as its owner gave it."""
    if len(data) > settings.ATTACH_MAX_BYTES:
        raise AttachmentRefused(too_big(name, len(data)), reason="size")
    if not data:
        raise AttachmentRefused(f"{name} is empty.", reason="empty")
    raster = _raster(data)
    if raster is not None:
        return _image(data, name, raster)
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    if suffix in _SVG_SUFFIXES or _is_svg(data):
        message = f"SVG images are not accepted; save {name} as a PNG or JPEG and attach that."
        raise AttachmentRefused(message, reason="type")
    if suffix in _IMAGE_SUFFIXES:
        message = f"{name} is not a PNG, JPEG, WebP or GIF image, the images that are accepted."
        raise AttachmentRefused(message, reason="type")
    if data.startswith(b"%PDF-"):
        return _pdf(data, name)
    return _text(data, name)


def image_tokens(width: int, height: int) -> int:
    """The tokens an image of ``width`` by ``height`` pixels costs, as OpenAI counts one
    sent with detail "high": scaled to fit within 2048 by 2048, then down (never up) until
    its shorter side is at most 768, it costs 170 tokens for each 512-pixel tile it covers,
    plus 85. OpenAI's examples: 1024 by 1024 costs 765 tokens; 2048 by 4096, 1105. Other
    providers count otherwise, but of the same order: an estimate, for budgets."""
    longest = max(width, height)
    if longest > 2048:
        width, height = max(1, width * 2048 // longest), max(1, height * 2048 // longest)
    shortest = min(width, height)
    if shortest > 768:
        width, height = width * 768 // shortest, height * 768 // shortest
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def _raster(data: bytes) -> _Raster | None:
    """The accepted image format whose signature ``data`` starts with, if any."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _PNG
    if data.startswith(b"\xff\xd8\xff"):
        return _JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _WEBP
    return None


def _image(data: bytes, name: str, raster: _Raster) -> Intake:
    try:
        picture = _decoded(data, raster)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = settings.ATTACH_IMAGE_MAX_PIXELS
        message = (
            f"{name} has too many pixels to open: images may have up to {limit:,} pixels. "
            "Make it smaller and attach it again."
        )
        raise AttachmentRefused(message, reason="bomb") from None
    except Exception:  # Pillow says a file is damaged with OSError, SyntaxError, ValueError…
        message = f"{name} could not be read as an image; it may be damaged."
        raise AttachmentRefused(message, reason="unreadable") from None
    return _written(picture, name, raster)


def _decoded(data: bytes, raster: _Raster) -> Image.Image:
    """The image's first frame, upright, in RGB or RGBA, with nothing of the file kept but
    its pixels; Image.DecompressionBombError before decoding one of too many pixels."""
    # Pillow checks an image's size as it opens it (and a GIF's frames as it reads them),
    # before decoding: against the setting (one value for the process).
    Image.MAX_IMAGE_PIXELS = settings.ATTACH_IMAGE_MAX_PIXELS
    # Pillow warns of an image of up to twice that, and refuses beyond: both are refused. A
    # filter of the process's, not warnings.catch_warnings, which is not thread-safe; put
    # back each time, since anything that restores the filters (catch_warnings) drops it.
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    # Only the plugin of the format its signature names: no other (EPS, say) ever runs.
    image = Image.open(io.BytesIO(data), formats=[raster.opened_as])
    # A JPEG larger than it will be kept is decoded at a half, a quarter or an eighth.
    image.draft(None, _fitted_size(image.size, settings.ATTACH_IMAGE_MAX_SIDE))
    image.load()
    upright = ImageOps.exif_transpose(image)
    if upright.mode.startswith("I"):  # 16-bit grey: to 8 bits, not clipped to white
        upright = upright.convert("I").point(lambda value: value / 257, "L")
    plain = upright.convert("RGBA" if upright.has_transparency_data else "RGB")
    # Savers take ICC profiles, comments and the like from `info`: none is written.
    plain.info = {}
    return plain


def _written(picture: Image.Image, name: str, raster: _Raster) -> Intake:
    """``picture`` written as ``raster`` says, within the longest side and bytes allowed."""
    limit = settings.ATTACH_IMAGE_MAX_BYTES
    side = min(settings.ATTACH_IMAGE_MAX_SIDE, max(picture.size))
    qualities: tuple[int | None, ...] = LOSSY_QUALITIES if raster.written_as != "PNG" else (None,)
    while True:
        scaled = picture.resize(_fitted_size(picture.size, side), Image.Resampling.LANCZOS)
        for quality in qualities:
            written = io.BytesIO()
            options = {} if quality is None else {"quality": quality}
            scaled.save(written, raster.written_as, **options)
            data = written.getvalue()
            if len(data) <= limit:
                return _kept("image", raster.content_type, raster.extension, data, scaled.size)
        if side <= MIN_SIDE:
            message = (
                f"{name} could not be made smaller than {size_words(limit)}, "
                "the most an image may be."
            )
            raise AttachmentRefused(message, reason="size")
        side = max(MIN_SIDE, side * 3 // 4)


def _fitted_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled down, keeping its shape, so its longest side is at most ``side``."""
    width, height = size
    longest = max(width, height)
    if longest <= side:
        return size
    return max(1, round(width * side / longest)), max(1, round(height * side / longest))


def _is_svg(data: bytes) -> bool:
    """Whether ``data`` is an SVG document: its root element, after the prolog, is <svg>."""
    head = data[:65536].decode("utf-8", "ignore").removeprefix("\ufeff")
    position = 0
    while (prolog := _XML_PROLOG.match(head, position)) and prolog.end() > position:
        position = prolog.end()
    return _SVG_ROOT.match(head, position) is not None


def _pdf(data: bytes, name: str) -> Intake:
    try:
        reader = PdfReader(io.BytesIO(data))
        # A PDF whose owner only restricted printing opens with the empty password.
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
        pages = (
            [] if locked else [page.extract_text() for page in islice(reader.pages, MAX_PDF_PAGES)]
        )
    except Exception:  # pypdf says a file is damaged with PyPdfError, and others besides
        pages, locked = [], False
    if locked:
        message = f"{name} is protected by a password; remove it and attach the file again."
        raise AttachmentRefused(message, reason="unreadable")
    if not pages:
        message = f"{name} could not be read as a PDF; it may be damaged."
        raise AttachmentRefused(message, reason="unreadable")
    # What the model is sent is stored too: no NUL, no half of a surrogate pair.
    text = "\n\n".join(pages).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if not text.strip():
        message = f"{name} has no text to read (a scanned PDF?); attach its pages as images."
        raise AttachmentRefused(message, reason="no_text")
    return _kept("pdf", "application/pdf", ".pdf", data, text=text)


def _text(data: bytes, name: str) -> Intake:
    not_utf8 = AttachmentRefused(
        f"{name} is not UTF-8 text; save it as UTF-8 and attach it again.", reason="encoding"
    )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise not_utf8  # UTF-16 (or UTF-32) text, full of NULs: not a binary file
    if b"\x00" in data[:_BINARY_SNIFF]:
        message = f"{name} is not a kind of file that can be attached: {ACCEPTED} can."
        raise AttachmentRefused(message, reason="type")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise not_utf8 from None
    if "\x00" in text:
        raise not_utf8
    if not text:
        raise AttachmentRefused(f"{name} is empty.", reason="empty")
    return _kept("text", "text/plain; charset=utf-8", ".txt", data, text=text)


def _kept(
    kind: Literal["image", "text", "pdf"],
    content_type: str,
    extension: str,
    data: bytes,
    size: tuple[int, int] | None = None,
    text: str = "",
) -> Intake:
    width, height = size or (None, None)
    sha256 = hashlib.sha256(data).hexdigest()
    return Intake(kind, content_type, extension, data, text, width, height, sha256)


def too_big(name: str, size: int) -> str:
    """Why a file of ``size`` bytes is refused, over ATTACH_MAX_BYTES (the page says the same:
    chat/tray.js ``tooBig``)."""
    limit = settings.ATTACH_MAX_BYTES
    return f"{name} is {size_words(size)}; files may be up to {size_words(limit)}."


def size_words(count: int) -> str:
    """``count`` bytes in a person's words: "31.5 MB", "20 MB", "900 kB", "12 bytes"."""
    for unit, step in (("MB", 1_000_000), ("kB", 1_000)):
        if count >= step:
            return f"{count / step:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"
