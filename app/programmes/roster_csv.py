"""Reading a roster file: our own CSV columns or Zoom's breakout pre-assignment file.

This module only reads and checks the file; `app.programmes.roster` applies it to a programme.
Every problem is reported with the line number a spreadsheet would show (the header is line 1),
so a host can fix the whole file in one pass.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from app.models import Role

MAX_ROSTER_BYTES = 2 * 1024 * 1024
MAX_NAME = 100
MAX_EMAIL = 254
MAX_PRONOUNS = 40
MAX_GROUP_NAME = 100

RosterFormat = Literal["roundtable", "zoom"]
ErrorFn = Callable[[str, str], None]  # error(field, message)

COLUMNS = ("name", "email", "pronouns", "role", "group")
REQUIRED_COLUMNS = ("name", "email")
COLUMN_ALIASES = {
    "e-mail": "email",
    "email address": "email",
    "e-mail address": "email",
    "full name": "name",
    "display name": "name",
    "group name": "group",
}
ZOOM_ROOM = "pre-assign room name"
ZOOM_HEADER = "Pre-assign Room Name,Email Address"

ROLE_ALIASES = {
    "host": Role.HOST,
    "facilitator": Role.FACILITATOR,
    "participant": Role.PARTICIPANT,
    "it_support": Role.IT_SUPPORT,
    "it support": Role.IT_SUPPORT,
    "it-support": Role.IT_SUPPORT,
    "itsupport": Role.IT_SUPPORT,
    "observer": Role.OBSERVER,
}
ROLE_CHOICES = "host, facilitator, participant, IT support or observer"

SAVE_AS_UTF8 = (
    'In Excel choose File > Save As and pick "CSV UTF-8 (Comma delimited) (*.csv)"; '
    'in LibreOffice tick "Edit filter settings" and choose "Unicode (UTF-8)"; '
    "in Google Sheets use File > Download > Comma-separated values. Then upload that file."
)
# Control characters other than tab, line feed and carriage return never occur in text files.
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class RowError:
    """One problem. `line` is None for a problem with the whole file."""

    line: int | None
    field: str
    message: str


class RosterRejected(Exception):
    """The file was not imported; `errors` says everything that is wrong with it."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the roster file")
        self.errors = sorted(errors, key=lambda e: (e.line or 0, COLUMNS_ORDER.get(e.field, 99)))


COLUMNS_ORDER = {name: i for i, name in enumerate(("file", "header", "row", *COLUMNS))}


@dataclass(frozen=True)
class RosterRow:
    line: int
    email: str  # lower case
    name: str  # "" in Zoom files: the name comes from the account or the e-mail address
    pronouns: str
    role: Role | None  # None when the file does not say
    group: str  # "" when the file does not say


@dataclass
class ParsedRoster:
    format: RosterFormat
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _file_error(message: str) -> RosterRejected:
    return RosterRejected([RowError(line=None, field="file", message=message)])


def decode_roster(data: bytes, *, max_bytes: int = MAX_ROSTER_BYTES) -> str:
    """The file's text, or RosterRejected saying why it cannot be read as a UTF-8 CSV file."""
    if len(data) > max_bytes:
        limit = max_bytes / (1024 * 1024)
        return _raise(
            f"The file is larger than {limit:g} MB, the limit for a roster. "
            "Split it into smaller files and import them one after another."
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _raise(
            'The file is saved as "Unicode text" (UTF-16), which we cannot read. ' + SAVE_AS_UTF8
        )
    if data.startswith(b"PK\x03\x04"):
        return _raise(
            "This is a spreadsheet workbook (for example .xlsx or .ods), not a CSV file. "
            + SAVE_AS_UTF8
        )
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return _raise("This is an old Excel workbook (.xls), not a CSV file. " + SAVE_AS_UTF8)
    if data.startswith(b"%PDF"):
        return _raise("This is a PDF document, not a CSV file. " + SAVE_AS_UTF8)
    if _BINARY_BYTES.search(data[:65536]) or b"\x00" in data:
        return _raise(
            "This does not look like a CSV text file (it contains binary data). " + SAVE_AS_UTF8
        )
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _raise(
            f"The file is not saved as UTF-8: line {line} has a character we cannot read. "
            "It looks like Windows-1252 or Latin-1, which Excel uses for plain "
            '"CSV (Comma delimited)". Please save it as "CSV UTF-8" instead. ' + SAVE_AS_UTF8
        )
    if not text.strip():
        return _raise(
            "The file is empty. It needs a header row (name,email,pronouns,role,group) "
            "and one row per person."
        )
    return text


def _raise(message: str) -> str:
    raise _file_error(message)


def _normalise_heading(cell: str) -> str:
    heading = " ".join(cell.replace("\ufeff", "").strip().lower().split())
    return COLUMN_ALIASES.get(heading, heading)


def _delimiter(text: str) -> str:
    """Excel in many European locales writes semicolons; tab-separated exports also occur."""
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    if "," not in first_line:
        if ";" in first_line:
            return ";"
        if "\t" in first_line:
            return "\t"
    return ","


def parse_roster(data: bytes, *, max_rows: int, max_bytes: int = MAX_ROSTER_BYTES) -> ParsedRoster:
    """Read and check a roster file. Whole-file problems raise RosterRejected; problems with
    single rows are collected in `errors` (alongside the rows that are fine)."""
    text = decode_roster(data, max_bytes=max_bytes)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    records: list[tuple[int, list[str]]] = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue  # blank lines, common at the end of spreadsheet exports
            records.append((start, cells))
            if len(records) > max_rows + 1:
                raise _file_error(
                    f"The file has more than {max_rows} people; the limit is {max_rows} per "
                    "import. Split it into smaller files."
                )
    except csv.Error as exc:
        raise _file_error(
            f"Line {reader.line_num} could not be read as CSV ({exc}). Check for a stray "
            "double quote, or save the file again from your spreadsheet as CSV UTF-8."
        ) from None
    if not records:
        raise _file_error("The file is empty.")
    header_line, header = records[0]
    columns = _read_header(header_line, header)
    roster_format: RosterFormat = "zoom" if ZOOM_ROOM in columns.values() else "roundtable"
    parsed = ParsedRoster(format=roster_format)
    if len(records) == 1:
        raise _file_error("The file has a header row but nobody in it.")
    seen_emails: dict[str, int] = {}
    for line, cells in records[1:]:
        _read_row(parsed, columns, line, cells, seen_emails)
    return parsed


def _read_header(line: int, header: list[str]) -> dict[int, str]:
    """Column index -> column name. Blank headings (trailing commas) are ignored."""
    if any("@" in cell for cell in header):
        message = (
            f"Line {line} looks like a person, not a header row. The first row must name the "
            "columns: name,email,pronouns,role,group (or, for a Zoom breakout file, "
            f"{ZOOM_HEADER})."
        )
        raise RosterRejected([RowError(line=line, field="header", message=message)])
    columns: dict[int, str] = {}
    problems: list[str] = []
    for index, cell in enumerate(header):
        heading = _normalise_heading(cell)
        if not heading:
            continue
        if heading in columns.values():
            problems.append(f'The column "{cell.strip()}" appears more than once.')
        columns[index] = heading
    names = set(columns.values())
    if ZOOM_ROOM in names:
        # Zoom's "Email Address" heading is read as "email" (see COLUMN_ALIASES).
        expected: tuple[str, ...] = (ZOOM_ROOM, "email")
        known = set(expected)
        accepted = ZOOM_HEADER
    else:
        expected = REQUIRED_COLUMNS
        known = set(COLUMNS)
        accepted = "name, email, pronouns, role, group"
    unknown = [header[i].strip() for i, h in columns.items() if h not in known]
    if unknown:
        listed = ", ".join(f'"{u[:40]}"' for u in unknown)
        problems.append(
            f"Unknown column{'s' if len(unknown) > 1 else ''} {listed}. The file was refused "
            "so that nothing is silently left out: remove or rename "
            f"{'them' if len(unknown) > 1 else 'it'}. The columns we accept are: {accepted}."
        )
    missing = [name for name in expected if name not in names]
    if missing:
        listed = ", ".join(f'"{m}"' for m in missing)
        problems.append(
            f"The header row has no {listed} column. The first row must name the columns "
            f"({accepted}; any order, any capitals)."
        )
    if problems:
        raise RosterRejected([RowError(line=line, field="header", message=p) for p in problems])
    return columns


def _read_row(
    parsed: ParsedRoster,
    columns: dict[int, str],
    line: int,
    cells: list[str],
    seen_emails: dict[str, int],
) -> None:
    errors: list[RowError] = []

    def error(field_name: str, message: str) -> None:
        errors.append(RowError(line=line, field=field_name, message=message))

    values: dict[str, str] = {}
    stray = False
    for index, cell in enumerate(cells):
        heading = columns.get(index)
        if heading is None:
            stray = stray or bool(cell.strip())
        else:
            values[heading] = cell.strip()
    if stray:
        error(
            "row",
            "This row has a value in a column without a heading. A comma inside a value "
            "needs the whole value in double quotes.",
        )
    email = _check_email(values.get("email", ""), error)
    if email:
        first = seen_emails.setdefault(email, line)
        if first != line:
            error("email", f"This e-mail address is also on line {first}; list each person once.")
    if parsed.format == "zoom":
        name, pronouns, role = "", "", None
        group = _check_text(
            values.get(ZOOM_ROOM, ""),
            "group",
            "Pre-assign Room Name",
            MAX_GROUP_NAME,
            error,
            required=True,
        )
    else:
        name = _check_text(values.get("name", ""), "name", "Name", MAX_NAME, error, required=True)
        pronouns = _check_text(
            values.get("pronouns", ""), "pronouns", "Pronouns", MAX_PRONOUNS, error
        )
        group = _check_text(values.get("group", ""), "group", "Group name", MAX_GROUP_NAME, error)
        role = _check_role(values.get("role", ""), error)
    if errors:
        parsed.errors.extend(errors)
        return
    parsed.rows.append(
        RosterRow(line=line, email=email, name=name, pronouns=pronouns, role=role, group=group)
    )


def _check_text(
    value: str, field_name: str, label: str, limit: int, error: ErrorFn, *, required: bool = False
) -> str:
    if _CONTROL_CHARS.search(value.replace("\t", " ")):
        error(field_name, f"{label} contains a line break or control character.")
        return ""
    value = " ".join(value.split())
    if len(value) > limit:
        error(field_name, f"{label} is {len(value)} characters long; the limit is {limit}.")
        return ""
    if required and not value:
        error(field_name, f"{label} is missing.")
    return value


def _check_email(value: str, error: ErrorFn) -> str:
    if not value:
        error("email", "E-mail address is missing.")
        return ""
    if len(value) > MAX_EMAIL:
        error("email", f"E-mail address is longer than {MAX_EMAIL} characters.")
        return ""
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        error("email", f'"{value[:60]}" is not a valid e-mail address: {exc}')
        return ""
    return checked.normalized.lower()


def _check_role(value: str, error: ErrorFn) -> Role | None:
    if not value:
        return None
    role = ROLE_ALIASES.get(" ".join(value.lower().split()))
    if role is None:
        error(
            "role",
            f'Unknown role "{value[:40]}". Use {ROLE_CHOICES}, or leave it empty for participant.',
        )
    return role


def name_from_email(email: str) -> str:
    """A readable name for a Zoom row: "jo.bloggs+x@example.org" -> "Jo Bloggs"."""
    local = email.split("@", 1)[0].split("+", 1)[0]
    words = [w for w in re.split(r"[._\-]+", local) if w]
    name = " ".join(w[:1].upper() + w[1:] for w in words) or local or email
    return name[:MAX_NAME]
