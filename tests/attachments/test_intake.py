"""What an attached file is, by its bytes (streaming/intake.py): real images made with Pillow,
real PDFs, text in and out of UTF-8; what is kept, and what is refused and why."""

import hashlib
import io
import os
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from pypdf import PdfReader, PdfWriter

from streaming import intake
from streaming.exceptions import AttachmentRefused, ErrorCode
from tests.support.files import pdf, png_declaring, words

# --- Files made to measure ------------------------------------------------------------------


def encoded(image: Image.Image, format: str, **options: Any) -> bytes:
    written = io.BytesIO()
    image.save(written, format, **options)
    return written.getvalue()


def noise(width: int, height: int) -> Image.Image:
    """Random pixels: they do not compress, so the file is as large as an image gets."""
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encrypted(document: bytes, *, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(document)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    written = io.BytesIO()
    writer.write(written)
    return written.getvalue()


def refusal(data: bytes, name: str) -> AttachmentRefused:
    with pytest.raises(AttachmentRefused) as refused:
        intake.read(data, name)
    assert refused.value.code == ErrorCode.BAD_ATTACHMENT
    return refused.value


# --- Images ---------------------------------------------------------------------------------


def test_png_comes_out_without_its_text_chunks_or_profile() -> None:
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("location", "secret-location")  # tEXt
    chunks.add_text("camera", "secret-ztxt", zip=True)  # zTXt
    chunks.add_itxt("comment", "secret-itxt")  # iTXt
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upload = encoded(
        Image.new("RGB", (64, 48), (200, 10, 10)), "PNG", pnginfo=chunks, icc_profile=profile
    )
    assert b"secret-location" in upload

    kept = intake.read(upload, "screenshot.png")

    assert (kept.kind, kept.content_type, kept.extension) == ("image", "image/png", ".png")
    assert (kept.width, kept.height, kept.text) == (64, 48, "")
    assert b"secret" not in kept.data
    image = opened(kept.data)
    assert image.format == "PNG"
    assert image.text == {}  # type: ignore[attr-defined]
    assert image.info == {}  # no ICC profile either
    assert image.getpixel((0, 0)) == (200, 10, 10)
    assert kept.sha256 == hashlib.sha256(kept.data).hexdigest()


def test_jpeg_comes_out_upright_without_its_exif_and_location() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Orientation] = 6  # stored on its side: turn 90° clockwise to show
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    upload = encoded(stored, "JPEG", exif=exif)
    assert opened(upload).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    kept = intake.read(upload, "holiday.jpeg")

    assert (kept.content_type, kept.extension) == ("image/jpeg", ".jpg")
    assert (kept.width, kept.height) == (20, 40)  # turned: what was the left is now the top
    assert b"Exif" not in kept.data
    assert b"SecretCam" not in kept.data
    image = opened(kept.data)
    assert image.format == "JPEG"
    assert dict(image.getexif()) == {}
    assert "exif" not in image.info
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > 200 > top[2]  # red
    assert bottom[0] < 50 < bottom[2]  # blue


def test_a_large_image_is_scaled_down_to_the_longest_side() -> None:
    kept = intake.read(encoded(Image.new("RGB", (4000, 3000), (9, 99, 199)), "PNG"), "big.png")

    assert (kept.width, kept.height) == (2048, 1536)
    assert opened(kept.data).size == (2048, 1536)


def test_the_longest_side_is_a_setting(settings: Any) -> None:
    settings.ATTACH_IMAGE_MAX_SIDE = 100
    kept = intake.read(encoded(Image.new("RGB", (300, 900)), "WEBP"), "tall.webp")

    assert (kept.content_type, kept.extension, kept.width, kept.height) == (
        "image/webp",
        ".webp",
        33,
        100,
    )
    assert opened(kept.data).format == "WEBP"


def test_an_animated_gif_gives_a_png_of_its_first_frame() -> None:
    frames = [Image.new("RGB", (30, 20), colour) for colour in ("red", "lime", "blue")]
    upload = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert opened(upload).n_frames == 3  # type: ignore[attr-defined]

    kept = intake.read(upload, "party.gif")

    assert (kept.content_type, kept.extension) == ("image/png", ".png")
    image = opened(kept.data)
    assert (image.format, image.size, getattr(image, "n_frames", 1)) == ("PNG", (30, 20), 1)
    assert image.getpixel((5, 5)) == (255, 0, 0)


def test_sixteen_bit_grey_is_brought_to_eight_bits_not_clipped() -> None:
    upload = encoded(Image.new("I;16", (8, 8), 40_000), "PNG")

    image = opened(intake.read(upload, "scan.png").data)

    assert image.getpixel((0, 0)) == (155, 155, 155)  # 40000 / 257, not white


def test_transparency_is_kept() -> None:
    upload = encoded(Image.new("RGBA", (10, 10), (0, 128, 0, 64)), "PNG")

    image = opened(intake.read(upload, "glass.png").data)

    assert image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (0, 128, 0, 64)


def test_an_image_too_large_in_bytes_is_scaled_down_until_it_fits(
    settings: Any,
) -> None:
    settings.ATTACH_IMAGE_MAX_BYTES = 100_000
    upload = encoded(noise(512, 512), "PNG")
    assert len(upload) > 700_000

    kept = intake.read(upload, "noise.png")

    assert len(kept.data) <= 100_000
    assert kept.width == kept.height
    assert kept.width is not None
    assert kept.width < 512


def test_an_image_that_cannot_be_made_small_enough_is_refused(settings: Any) -> None:
    settings.ATTACH_IMAGE_MAX_BYTES = 100

    refused = refusal(encoded(noise(128, 128), "JPEG"), "noise.jpg")

    assert refused.reason == "size"
    assert (
        refused.message
        == "noise.jpg could not be made smaller than 100 bytes, the most an image may be."
    )


def test_a_pixel_bomb_is_refused_unopened() -> None:
    upload = png_declaring(30_000, 30_000)  # 900 million pixels, in 67 bytes
    assert len(upload) < 100

    refused = refusal(upload, "bomb.png")

    assert refused.reason == "bomb"
    assert refused.message == (
        "bomb.png has too many pixels to open: images may have up to 50,000,000 pixels. "
        "Make it smaller and attach it again."
    )


@pytest.mark.parametrize("side", [40, 60], ids=["pillow-warns", "pillow-refuses"])
def test_images_over_the_pixel_setting_are_bombs(
    settings: Any, recwarn: pytest.WarningsRecorder, side: int
) -> None:
    """Pillow warns between its limit and twice that, and refuses beyond: both are refused,
    the warning as an error, not written anywhere."""
    settings.ATTACH_IMAGE_MAX_PIXELS = 1000

    assert refusal(encoded(Image.new("RGB", (side, side)), "PNG"), "w.png").reason == "bomb"
    assert recwarn.list == []


def test_a_damaged_image_is_refused_as_unreadable() -> None:
    upload = encoded(Image.new("RGB", (50, 50)), "PNG")[:60]

    refused = refusal(upload, "cut.png")

    assert (refused.reason, refused.message) == (
        "unreadable",
        "cut.png could not be read as an image; it may be damaged.",
    )


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "a.svg"),
        (
            b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC '
            b'"-//W3C//DTD SVG 1.1//EN" "x.dtd">\n<svg:svg xmlns:svg="http://www.w3.org/2000/svg"/>',
            "drawing.txt",
        ),
        (b"just text in a file named as an SVG", "logo.svg"),
    ],
    ids=["svg", "svg-by-content-named-txt", "named-svg"],
)
def test_svg_is_refused_by_content_or_name(data: bytes, name: str) -> None:
    refused = refusal(data, name)

    assert refused.reason == "type"
    assert refused.message == (
        f"SVG images are not accepted; save {name} as a PNG or JPEG and attach that."
    )


def test_a_source_file_that_draws_an_svg_is_text() -> None:
    source = b'export const Icon = () => (\n  <svg viewBox="0 0 1 1"><path d="M0 0"/></svg>\n);\n'

    assert intake.read(source, "Icon.jsx").kind == "text"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "cat.png"),
        (b"GIF8 not quite", "anim.gif"),
        (encoded(Image.new("RGB", (4, 4)), "BMP"), "old.bmp"),
    ],
    ids=["html-named-png", "text-named-gif", "bmp"],
)
def test_a_name_that_says_image_on_other_bytes_is_refused(data: bytes, name: str) -> None:
    refused = refusal(data, name)

    assert refused.reason == "type"
    assert refused.message == (
        f"{name} is not a PNG, JPEG, WebP or GIF image, the images that are accepted."
    )


def test_an_image_is_told_by_its_bytes_not_its_name() -> None:
    kept = intake.read(encoded(Image.new("RGB", (8, 8)), "JPEG"), "notes.txt")

    assert (kept.kind, kept.content_type) == ("image", "image/jpeg")


# --- Sizes --------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    # A PNG's signature, then nothing an image decoder could read: only the size is looked at.
    upload = b"\x89PNG\r\n\x1a\n" + bytes(30 * 1024 * 1024 - 8)

    refused = refusal(upload, "huge.png")

    assert (refused.reason, refused.message) == (
        "size",
        "huge.png is 31.5 MB; files may be up to 20 MB.",
    )


def test_an_empty_file_is_refused() -> None:
    assert (refusal(b"", "nothing.txt").reason, refusal(b"", "nothing.txt").message) == (
        "empty",
        "nothing.txt is empty.",
    )


# --- Text ------------------------------------------------------------------------------------


def test_utf8_text_is_kept_as_uploaded() -> None:
    upload = "def grüß():\n    return '東京 ✨'\n".encode()

    kept = intake.read(upload, "hello.py")

    assert (kept.kind, kept.content_type, kept.extension) == (
        "text",
        "text/plain; charset=utf-8",
        ".txt",
    )
    assert (kept.data, kept.text) == (upload, upload.decode())
    assert (kept.width, kept.height) == (None, None)


def test_an_html_file_is_text() -> None:
    upload = b"<!DOCTYPE html><html><body onload='alert(1)'>hi</body></html>"

    kept = intake.read(upload, "page.html")

    assert (kept.kind, kept.content_type, kept.text) == (
        "text",
        "text/plain; charset=utf-8",
        upload.decode(),
    )


def test_a_byte_order_mark_is_left_out_of_the_text() -> None:
    upload = b"\xef\xbb\xbfcol1,col2\n1,2\n"

    kept = intake.read(upload, "table.csv")

    assert kept.text == "col1,col2\n1,2\n"
    assert kept.data == upload


@pytest.mark.parametrize(
    "data",
    [
        "café au lait, naïve résumé".encode("latin-1"),
        "UTF-16 text".encode("utf-16"),
        b"text, then a NUL far in" + b" " * 9000 + b"\x00",
    ],
    ids=["latin-1", "utf-16", "nul-after-the-start"],
)
def test_text_that_is_not_utf8_is_refused(data: bytes) -> None:
    refused = refusal(data, "notes.txt")

    assert (refused.reason, refused.message) == (
        "encoding",
        "notes.txt is not UTF-8 text; save it as UTF-8 and attach it again.",
    )


@pytest.mark.parametrize(
    "data",
    [b"PK\x03\x04\x14\x00\x00\x00\x08\x00", b"MZ\x90\x00\x03\x00\x00\x00", b"ID3\x04\x00\x00"],
    ids=["zip", "exe", "mp3"],
)
def test_anything_else_is_refused_naming_what_is_accepted(data: bytes) -> None:
    refused = refusal(data, "thing.bin")

    assert (refused.reason, refused.message) == (
        "type",
        "thing.bin is not a kind of file that can be attached: images (PNG, JPEG, WebP, GIF), "
        "PDF, and UTF-8 text or source files can.",
    )


# --- PDF -------------------------------------------------------------------------------------


def test_a_pdf_is_kept_as_uploaded_with_its_text() -> None:
    upload = pdf(words("Quarterly figures rose"), words("Second page here"))

    kept = intake.read(upload, "report.pdf")

    assert (kept.kind, kept.content_type, kept.extension) == ("pdf", "application/pdf", ".pdf")
    assert kept.data == upload
    assert kept.text == "Quarterly figures rose\n\nSecond page here"


def test_a_pdf_only_its_owner_restricted_opens() -> None:
    upload = encrypted(pdf(words("Open to all readers")), user_password="")

    assert intake.read(upload, "restricted.pdf").text == "Open to all readers"


def test_a_pdf_behind_a_password_is_refused() -> None:
    upload = encrypted(pdf(words("Locked away")), user_password="secret")

    refused = refusal(upload, "locked.pdf")

    assert (refused.reason, refused.message) == (
        "unreadable",
        "locked.pdf is protected by a password; remove it and attach the file again.",
    )


def test_a_pdf_with_no_text_is_refused_saying_so() -> None:
    refused = refusal(pdf(b"0 0 m 100 100 l S"), "scan.pdf")  # a line drawn, no text

    assert (refused.reason, refused.message) == (
        "no_text",
        "scan.pdf has no text to read (a scanned PDF?); attach its pages as images.",
    )


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n" + b"garbage " * 100, b"%PDF-", pdf(words("cut short"))[:200]],
    ids=["garbage", "header-only", "truncated"],
)
def test_a_damaged_pdf_is_refused_as_unreadable(data: bytes) -> None:
    refused = refusal(data, "broken.pdf")

    assert (refused.reason, refused.message) == (
        "unreadable",
        "broken.pdf could not be read as a PDF; it may be damaged.",
    )


def test_only_the_first_pages_of_a_long_pdf_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "MAX_PDF_PAGES", 2)

    kept = intake.read(pdf(words("one"), words("two"), words("three")), "long.pdf")

    assert kept.text == "one\n\ntwo"


# --- What an image costs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (1024, 1024, 765),  # OpenAI's example: scaled to 768 x 768, 4 tiles
        (2048, 4096, 1105),  # OpenAI's example: 1024 x 2048, then 768 x 1536, 6 tiles
        (4000, 3000, 765),  # 2048 x 1536, then 1024 x 768: 4 tiles
        (512, 512, 255),  # one tile
        (128, 64, 255),  # never scaled up
        (513, 100, 425),  # two tiles across
        (1, 10_000, 765),  # 1 x 2048: 4 tiles down
    ],
)
def test_image_tokens_count_tiles_as_openai_does(width: int, height: int, tokens: int) -> None:
    assert intake.image_tokens(width, height) == tokens
