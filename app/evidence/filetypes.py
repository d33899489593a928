"""What an uploaded file really is, judged from its content.

The first bytes decide the type; the file's name must agree with it (a photo called
notes.pdf is refused, so nobody downloads something other than what they were shown).
Office files are ZIP archives: the member their format requires is looked for without
unpacking anything."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from app.evidence.models import EvidenceKind

SNIFF_BYTES = 64  # enough for every signature below


class Family(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    DOCUMENT = "document"


@dataclass(frozen=True)
class FileType:
    name: str  # for people: "JPEG image"
    family: Family
    content_type: str
    extensions: tuple[str, ...]
    # ZIP-based formats: a member that must exist, or the exact `mimetype` member (ODF).
    zip_member: str | None = None
    odf_mimetype: str | None = None


_OOXML = "application/vnd.openxmlformats-officedocument"
_ODT = "application/vnd.oasis.opendocument.text"

JPEG = FileType("JPEG image", Family.IMAGE, "image/jpeg", ("jpg", "jpeg", "jfif"))
PNG = FileType("PNG image", Family.IMAGE, "image/png", ("png",))
WEBP = FileType("WebP image", Family.IMAGE, "image/webp", ("webp",))
GIF = FileType("GIF image", Family.IMAGE, "image/gif", ("gif",))
HEIC = FileType("HEIC photo", Family.IMAGE, "image/heic", ("heic", "heif"))
WAV = FileType("WAV sound", Family.AUDIO, "audio/wav", ("wav",))
MP3 = FileType("MP3 sound", Family.AUDIO, "audio/mpeg", ("mp3",))
M4A = FileType("M4A sound", Family.AUDIO, "audio/mp4", ("m4a", "mp4", "aac"))
AAC = FileType("AAC sound", Family.AUDIO, "audio/aac", ("aac",))
OGG = FileType("Ogg sound", Family.AUDIO, "audio/ogg", ("ogg", "oga", "opus"))
WEBM = FileType("WebM sound", Family.AUDIO, "audio/webm", ("webm", "weba"))
FLAC = FileType("FLAC sound", Family.AUDIO, "audio/flac", ("flac",))
PDF = FileType("PDF", Family.DOCUMENT, "application/pdf", ("pdf",))
DOCX = FileType(
    "Word document",
    Family.DOCUMENT,
    f"{_OOXML}.wordprocessingml.document",
    ("docx",),
    zip_member="word/document.xml",
)
PPTX = FileType(
    "PowerPoint slides",
    Family.DOCUMENT,
    f"{_OOXML}.presentationml.presentation",
    ("pptx",),
    zip_member="ppt/presentation.xml",
)
ODT = FileType("OpenDocument text", Family.DOCUMENT, _ODT, ("odt",), odf_mimetype=_ODT)

ALL_TYPES = (JPEG, PNG, WEBP, GIF, HEIC, WAV, MP3, M4A, AAC, OGG, WEBM, FLAC, PDF, DOCX, PPTX, ODT)
# What a download may ever be labelled with; everything else is application/octet-stream.
SAFE_CONTENT_TYPES = frozenset(t.content_type for t in ALL_TYPES)
ACCEPT_ATTRIBUTE = ",".join(dict.fromkeys(f".{ext}" for t in ALL_TYPES for ext in t.extensions))

# Kinds a person may choose for a file; "auto" follows the file's family.
POSTER_FAMILIES = (Family.IMAGE, Family.DOCUMENT)
KIND_FOR_FAMILY = {
    Family.IMAGE: EvidenceKind.IMAGE,
    Family.AUDIO: EvidenceKind.AUDIO,
    Family.DOCUMENT: EvidenceKind.DOCUMENT,
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def _iso_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file (`ftyp` box)."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return set()
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head))
    brands = {head[8:12]}
    brands.update(head[i : i + 4] for i in range(16, end - 3, 4))
    return brands


def _is_mpeg_audio_frame(head: bytes) -> bool:
    # 11 sync bits, an MPEG version that is not "reserved", a layer that is not "reserved".
    return (
        len(head) >= 2
        and head[0] == 0xFF
        and (head[1] & 0xE0) == 0xE0
        and (head[1] & 0x18) != 0x08
        and (head[1] & 0x06) != 0
    )


def _is_adts(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0


_SIGNATURES: list[tuple[Callable[[bytes], bool], FileType]] = [
    (lambda h: h.startswith(b"\xff\xd8\xff"), JPEG),
    (lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"), PNG),
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", WEBP),
    (lambda h: h[:6] in (b"GIF87a", b"GIF89a"), GIF),
    (lambda h: bool(_iso_brands(h) & _HEIF_BRANDS), HEIC),
    (lambda h: h[:4] in (b"RIFF", b"RF64") and h[8:12] == b"WAVE", WAV),
    (lambda h: h.startswith(b"ID3"), MP3),
    (lambda h: bool(_iso_brands(h)), M4A),
    (lambda h: h.startswith(b"OggS"), OGG),
    (lambda h: h.startswith(b"\x1a\x45\xdf\xa3"), WEBM),
    (lambda h: h.startswith(b"fLaC"), FLAC),
    (lambda h: h.startswith(b"%PDF-"), PDF),
    (_is_adts, AAC),
    (_is_mpeg_audio_frame, MP3),
]


def sniff(head: bytes) -> FileType | None:
    """The type the content says, or None when it is none we accept. For ZIP-based office
    files the answer depends on the name (DOCX and PPTX look alike at the start); see
    `identify`."""
    for matches, file_type in _SIGNATURES:
        if matches(head):
            return file_type
    return None


_ZIP_TYPES = (DOCX, PPTX, ODT)


def extension_of(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot else ""


def accepted_names() -> str:
    return "photos and images (JPEG, PNG, WebP, GIF, HEIC), sound (WAV, MP3, M4A, AAC, OGG, \
Opus, WebM, FLAC), and documents (PDF, Word, PowerPoint, OpenDocument text)"


def identify(head: bytes, filename: str) -> FileType:
    """The file's type from its first bytes, checked against its name.

    Raises `TypeRefused` with a message for the person."""
    ext = extension_of(filename)
    if head.startswith(b"PK\x03\x04"):
        for file_type in _ZIP_TYPES:
            if ext in file_type.extensions:
                return file_type
        raise TypeRefused(
            f"“{filename}” is a ZIP archive. We accept Word (DOCX), PowerPoint (PPTX) and "
            "OpenDocument (ODT) files, but not other archives."
        )
    found = sniff(head)
    if found is None:
        raise TypeRefused(
            f"“{filename}” is not a type of file we accept. We accept {accepted_names()}."
        )
    if ext not in found.extensions and not (found is AAC and ext in M4A.extensions):
        raise TypeRefused(
            f"“{filename}” does not contain what its name says: its content is a "
            f"{found.name}. Rename it to end in .{found.extensions[0]}, or choose the "
            "right file."
        )
    return found


class TypeRefused(ValueError):
    """Content we do not accept, or content that does not match the file's name."""


class ZipFormat(Protocol):
    @property
    def zip_member(self) -> str | None: ...

    @property
    def odf_mimetype(self) -> str | None: ...


def zip_structure_ok(path: Path, file_type: ZipFormat) -> bool:
    """The member its format requires is there (looked for without unpacking anything)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if file_type.odf_mimetype is not None:
                info = archive.getinfo("mimetype")
                if info.file_size > 100:
                    return False
                return archive.read(info).strip() == file_type.odf_mimetype.encode()
            return file_type.zip_member in archive.namelist()
    except (
        zipfile.BadZipFile,
        KeyError,
        OSError,
        RuntimeError,
        NotImplementedError,
        zlib.error,
        EOFError,
        ValueError,
    ):
        return False


def pdf_complete(path: Path) -> bool:
    """A PDF ends with `%%EOF` (allowing trailing whitespace and junk some tools add)."""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 2048))
        return b"%%EOF" in f.read()
