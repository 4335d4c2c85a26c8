"""flowrun.media: sniffing from content, data URLs, PDF pages, request limits."""

from __future__ import annotations

import base64
import sys

import pytest
from media_kit import make_image, make_pdf

from flowrun import media


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                      ("WEBP", "image/webp"), ("GIF", "image/gif"),
                                      ("BMP", "image/bmp"), ("TIFF", "image/tiff")])
def test_sniff_reads_the_content(fmt, mime):
    data = make_image(None, fmt)
    assert media.sniff(data) == mime
    assert media.sniff_with_pillow(data) == mime


def test_sniff_pdf_and_unknown(tmp_path):
    pdf = make_pdf(tmp_path / "a.pdf", ["hello"]).read_bytes()
    assert media.sniff(pdf) == "application/pdf"
    assert media.sniff(b"junk\n" + pdf) == "application/pdf"  # header within the first KB
    assert media.sniff(b"plain text, nothing else") is None
    assert media.sniff(b"") is None


def test_sniff_path_ignores_the_extension(tmp_path):
    lying = tmp_path / "photo.jpg"
    make_image(lying, "PNG")
    assert media.sniff_path(lying) == "image/png"


def test_data_urls_round_trip_and_errors():
    data = make_image(None, "PNG")
    url = media.data_url("image/png", data)
    assert url.startswith("data:image/png;base64,")
    assert media.parse_data_url(url) == ("image/png", data)
    with pytest.raises(media.MediaError, match="does not decode"):
        media.parse_data_url("data:image/png;base64,@@not base64@@")
    with pytest.raises(media.MediaError, match="not base64-encoded"):
        media.parse_data_url("data:image/png,rawbytes")
    with pytest.raises(media.MediaError, match="no MIME type"):
        media.parse_data_url("data:;base64," + base64.b64encode(data).decode())
    with pytest.raises(media.MediaError, match="not a data URL"):
        media.parse_data_url("https://example.com/a.png")


def test_image_size_decodes_fully():
    assert media.image_size(make_image(None, "PNG", (31, 17))) == (31, 17)
    truncated = make_image(None, "PNG", (300, 300))[:60]
    with pytest.raises(media.MediaError, match="not a readable image"):
        media.image_size(truncated)


def test_pdf_pages_with_pypdf_and_without(tmp_path, monkeypatch):
    data = make_pdf(tmp_path / "p.pdf", ["one", "two", "three"]).read_bytes()
    assert media.pdf_page_count(data) == (3, "pypdf")
    assert media.pdf_text(data)[1].strip() == "two"
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if the media extra were missing
    assert media.pdf_page_count(data) == (3, "pattern")
    with pytest.raises(ImportError):
        media.pdf_text(data)


def test_unreadable_pdf_is_a_media_error():
    with pytest.raises(media.MediaError, match="not a readable PDF"):
        media.pdf_page_count(b"%PDF-1.7\nthis is not really a pdf\n")


def test_limits_name_the_files():
    files = [media.FileLoad("a.pdf", 20 * 1024 * 1024, 60), media.FileLoad("b.pdf", 13 * 1024 * 1024, 41)]
    with pytest.raises(media.MediaError, match=r"33\.0 MB, over the limit of 32\.0 MB.*a\.pdf.*b\.pdf"):
        media.check_total_bytes(files)
    with pytest.raises(media.MediaError, match=r"101 pages, over the limit of 100.*a\.pdf \(60 pages\)"):
        media.check_total_pages(files)
    media.check_total_bytes(files[:1])
    media.check_total_pages([media.FileLoad("c.pdf", 1, 100)])
