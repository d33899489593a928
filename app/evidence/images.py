"""Photos and images: checked whole, turned the right way up, stripped of EXIF and GPS
data (phones put where a photo was taken into it), and given a small thumbnail.

Everything here is blocking (Pillow); callers run it in a worker thread."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app.evidence.filetypes import GIF, HEIC, JPEG, PNG, WEBP, FileType

MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger is refused as a decompression bomb
MAX_FRAMES = 300  # animated GIF/WebP
MAX_ANIMATION_PIXELS = 400_000_000  # frames x pixels
THUMBNAIL_SIZE = (480, 480)
JPEG_QUALITY = 88

log = logging.getLogger(__name__)

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered  # noqa: PLW0603 - a one-time plugin registration, like Pillow's own
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


class ImageRefused(ValueError):
    """An image we cannot accept; the message says why, for people."""


@dataclass(frozen=True)
class CleanImage:
    """The cleaned image and its thumbnail, written next to the original."""

    path: Path
    file_type: FileType
    width: int
    height: int
    thumbnail: Path


_SAVE_AS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", GIF: "GIF"}


def clean_image(source: Path, file_type: FileType, *, filename: str) -> CleanImage:
    """Check the whole image, apply its orientation, drop its metadata (EXIF, GPS, XMP,
    comments; the colour profile is kept) and make a thumbnail. HEIC photos become JPEG,
    which every browser shows."""
    if file_type is HEIC:
        _register_heif()
    out_type = JPEG if file_type is HEIC else file_type
    cleaned = source.with_name(source.name + ".clean")
    thumbnail = source.with_name(source.name + ".thumb")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between its own limit and twice that; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                _check_size(image, filename)
                image.load()  # a truncated or corrupt file fails here
                frames = getattr(image, "n_frames", 1)
                animated = frames > 1 and out_type in (GIF, WEBP)
                if animated:
                    _check_animation(image, frames, filename)
                    _save_animation(image, cleaned, out_type)
                    upright = image.copy()
                else:
                    upright = ImageOps.exif_transpose(image)
                    _save_still(upright, cleaned, out_type, image.info.get("icc_profile"))
                width, height = upright.size
                _save_thumbnail(upright, thumbnail)
    except ImageRefused:
        _remove(cleaned, thumbnail)
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        _remove(cleaned, thumbnail)
        raise ImageRefused(_too_big(filename)) from None
    except Exception as exc:
        # Pillow's decoders raise many kinds of error on bad data (OSError, ValueError,
        # SyntaxError, EOFError, even IndexError), and their text may name the stored
        # file's path: the person is told only what they can act on.
        _remove(cleaned, thumbnail)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the server's disk, not the picture (decoders' errors carry no errno)
        log.info("image %s refused: %r", source.name, exc)
        raise ImageRefused(
            f"“{filename}” could not be read as an image: it may be incomplete or damaged "
            f"({_reason(exc)}). Try saving or exporting it again."
        ) from None
    return CleanImage(cleaned, out_type, width, height, thumbnail)


def _reason(exc: Exception) -> str:
    """What went wrong, in words of our own (never the exception's text)."""
    if isinstance(exc, UnidentifiedImageError):
        return "its content is not a picture we can open"
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return "it ends too soon"
    return "part of the picture could not be decoded"


def _too_big(filename: str) -> str:
    return (
        f"“{filename}” has too many pixels to handle safely (at most "
        f"{MAX_PIXELS // 1_000_000} megapixels). Make it smaller and upload it again."
    )


def _check_size(image: Image.Image, filename: str) -> None:
    width, height = image.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ImageRefused(_too_big(filename))


def _check_animation(image: Image.Image, frames: int, filename: str) -> None:
    width, height = image.size
    if frames > MAX_FRAMES or frames * width * height > MAX_ANIMATION_PIXELS:
        raise ImageRefused(
            f"“{filename}” is an animation too long to handle safely (at most {MAX_FRAMES} "
            "frames). Upload a still image or a shorter animation."
        )


def _save_still(image: Image.Image, path: Path, out_type: FileType, icc: bytes | None) -> None:
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if out_type is JPEG:
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        options.update(quality=JPEG_QUALITY, optimize=True)
    elif out_type is WEBP:
        options.update(quality=JPEG_QUALITY)
    elif out_type is PNG:
        options.update(optimize=False)
    # No `exif=`, `pnginfo=` or `comment=`: the copy carries none of the original's metadata.
    image.save(path, _SAVE_AS[out_type], **options)


def _save_animation(image: Image.Image, path: Path, out_type: FileType) -> None:
    image.info.pop("comment", None)
    image.info.pop("exif", None)
    image.info.pop("xmp", None)
    image.save(path, _SAVE_AS[out_type], save_all=True)


def _save_thumbnail(image: Image.Image, path: Path) -> None:
    thumb = image.copy()
    thumb.thumbnail(THUMBNAIL_SIZE)
    if thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert(
            "RGBA" if "A" in thumb.getbands() or "transparency" in thumb.info else "RGB"
        )
    thumb.save(path, "WEBP", quality=75)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
