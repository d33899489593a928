"""Receiving a multipart form as it arrives: fields are collected, each file is handed
piece by piece to a sink (which streams it to storage), so no file is ever held whole in
memory or spooled to a temporary file first.

python-multipart parses; its callbacks are synchronous, so they only record what they
saw, and the recorded events are applied in order between network reads, where the
sinks may await their writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header


class MalformedForm(ValueError):
    """The body is not a form we can read; the message says why, for people."""


@dataclass(frozen=True)
class FormLimits:
    max_fields: int = 50
    max_field_bytes: int = 64 * 1024
    max_files: int = 20


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    content_type: str  # what the browser claimed; never trusted for anything


class FileSink(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> None: ...

    async def abort(self) -> None: ...


FileOpener = Callable[[FilePart, dict[str, list[str]]], Awaitable[FileSink]]


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    file: FilePart | None = None
    data: bytearray = field(default_factory=bytearray)


def _decode(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise MalformedForm("Send the upload as a form (multipart/form-data).")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MalformedForm("The upload form has no valid boundary; please send it again.")
    return boundary


class _Recorder:
    """The parser's callbacks: record events, check limits."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.events: list[tuple[str, object]] = []
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""
        self.fields = 0
        self.files = 0

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        disposition = self.part.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name")
        if name is None:
            raise MalformedForm("A part of the upload form has no name; please send it again.")
        self.part.name = _decode(name)
        if b"filename" in options:
            self.files += 1
            if self.files > self.limits.max_files:
                raise MalformedForm(f"Send at most {self.limits.max_files} files at once.")
            self.part.file = FilePart(
                field=self.part.name,
                filename=_decode(options[b"filename"]),
                content_type=_decode(self.part.headers.get(b"content-type", b"")),
            )
            self.events.append(("file", self.part.file))
        else:
            self.fields += 1
            if self.fields > self.limits.max_fields:
                raise MalformedForm("The upload form has too many fields.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.file is not None:
            self.events.append(("data", data[start:end]))
            return
        self.part.data += data[start:end]
        if len(self.part.data) > self.limits.max_field_bytes:
            raise MalformedForm(f"The field “{self.part.name[:40]}” is too long.")

    def on_part_end(self) -> None:
        if self.part.file is not None:
            self.events.append(("end", None))
        else:
            self.events.append(("field", (self.part.name, _decode(bytes(self.part.data)))))


class _Delivery:
    """Applies the recorded events in order: fields are collected, each file's pieces go
    to the sink `open_file` made for it."""

    def __init__(self, open_file: FileOpener) -> None:
        self.open_file = open_file
        self.fields: dict[str, list[str]] = {}
        self.sink: FileSink | None = None  # the file being received

    async def apply(self, events: list[tuple[str, object]]) -> None:
        for kind, value in events:
            if kind == "field":
                assert isinstance(value, tuple)
                self.fields.setdefault(value[0], []).append(value[1])
            elif kind == "file":
                assert isinstance(value, FilePart)
                self.sink = await self.open_file(value, self.fields)
            elif kind == "data" and self.sink is not None:
                await self.sink.write(value)  # type: ignore[arg-type]
            elif kind == "end" and self.sink is not None:
                finished, self.sink = self.sink, None
                await finished.finish()


def _parse(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError as exc:
        if "header size" in str(exc):
            raise MalformedForm(
                "A file name in the upload is far too long. Rename the file "
                "(at most 255 characters) and try again."
            ) from None
        raise MalformedForm("The upload was not a well-formed form. Please try again.") from None


async def receive_form(
    stream: AsyncIterator[bytes],
    *,
    content_type: str,
    open_file: FileOpener,
    limits: FormLimits | None = None,
) -> dict[str, list[str]]:
    """Read the whole form from `stream`. Returns the fields; files went to the sinks made
    by `open_file` (called when each file starts, with the fields received so far).

    On any error the file being received is aborted and the error raised; files already
    finished are the caller's to discard."""
    recorder = _Recorder(limits or FormLimits())
    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": recorder.on_part_begin,
            "on_part_data": recorder.on_part_data,
            "on_part_end": recorder.on_part_end,
            "on_header_field": recorder.on_header_field,
            "on_header_value": recorder.on_header_value,
            "on_header_end": recorder.on_header_end,
            "on_headers_finished": recorder.on_headers_finished,
        },
    )
    delivery = _Delivery(open_file)
    try:
        async for chunk in stream:
            _parse(parser, chunk)
            events, recorder.events = recorder.events, []
            await delivery.apply(events)
        try:
            parser.finalize()
        except FormParserError:
            raise MalformedForm("The upload ended too soon. Please try again.") from None
        if delivery.sink is not None or parser.state is not MultipartState.END:
            raise MalformedForm("The upload ended too soon. Please try again.")
    except BaseException:
        if delivery.sink is not None:
            await delivery.sink.abort()
        raise
    return delivery.fields
