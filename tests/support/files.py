"""Files to attach, made to measure: images with metadata to strip, PDFs with words, and
the attachments a test uploads, over HTTP as the page does."""

import io
import json
import struct
import zlib
from typing import Any

from django.test import Client
from PIL import Image, PngImagePlugin

#: The private text chunk every test PNG carries: it must never reach the model or the disk.
SECRET = "secret-location-51.5N-0.1W"


def png(width: int = 64, height: int = 48, *, secret: str = SECRET) -> bytes:
    """A PNG whose tEXt chunk holds ``secret``."""
    image = Image.new("RGB", (width, height), (200, 40, 90))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", secret)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    data = out.getvalue()
    assert secret.encode() in data
    return data


def png_declaring(width: int, height: int) -> bytes:
    """A 1 x 1 PNG whose header says it is ``width`` x ``height``: a few dozen bytes that
    would decode to gigabytes."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # its CRC, made good
    return bytes(data)


def pdf(*pages: bytes) -> bytes:
    """A minimal, valid PDF: one page per content stream, in Helvetica, with a true xref."""
    font = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * number} 0 R" for number in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
    ]
    for number, stream in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * number}"
            f" 0 R /Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def words(text: str) -> bytes:
    """A page's content stream that writes ``text`` in Helvetica."""
    return b"BT /F1 24 Tf 72 700 Td (%s) Tj ET" % text.encode("latin-1")


def upload(
    client: Client, name: str, data: bytes, conversation: Any = None
) -> tuple[int, dict[str, Any]]:
    """Upload one file as the composer does: the status and the JSON answered."""
    fields: dict[str, Any] = {"file": _named(name, data)}
    if conversation is not None:
        fields["conversation"] = str(conversation)
    response = client.post("/attachments/", fields)
    return response.status_code, json.loads(response.content)


def _named(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle
