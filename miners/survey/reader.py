"""Read a Qualtrics export (.xlsx/.csv/.tsv) into header metadata and raw rows, refusing anything else clearly."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from db.errors import ExportError

#: A question column as Qualtrics names it by default: Q12, Q12_3, Q12_3_TEXT, QID12, Q12#1_2 …
QID_PATTERN = re.compile(r"^Q(?:ID)?\d+([_#.]\w+)*$", re.IGNORECASE)
#: Legacy exports name every column V1, V2, … in row 1 for the ten metadata fields (ResponseID first).
LEGACY_NAME = re.compile(r"^V(\d+)$")
#: Columns Qualtrics adds around the questions; kept in `raw`, never turned into questions.
METADATA_COLUMNS = frozenset(
    name.lower()
    for name in (
        "StartDate",
        "EndDate",
        "Status",
        "IPAddress",
        "Progress",
        "Duration (in seconds)",
        "Finished",
        "RecordedDate",
        "ResponseId",
        "ResponseID",
        "RecipientLastName",
        "RecipientFirstName",
        "RecipientEmail",
        "ExternalReference",
        "ExternalDataReference",
        "LocationLatitude",
        "LocationLongitude",
        "LocationAccuracy",
        "DistributionChannel",
        "UserLanguage",
        "Q_RecaptchaScore",
        "Q_RelevantIDDuplicate",
        "Q_RelevantIDDuplicateScore",
        "Q_RelevantIDFraudScore",
        "Q_RelevantIDLastStartDate",
        "Q_TotalDuration",
        "Q_URL",
        "Q_BallotBoxStuffing",
        "Q_DuplicateRespondent",
        "Q_Language",
    )
)
RESPONSE_ID_COLUMNS = ("ResponseId", "ResponseID", "_recordId")
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .#()-]*$")
_COLUMN_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ExportColumn:
    """One column of the export: its header name, question text and (newer exports) its ImportId object."""

    index: int
    name: str
    text: str
    import_id: str | None = None
    choice_id: str | None = None

    @property
    def letter(self) -> str:
        return column_letter(self.index)

    @property
    def is_metadata(self) -> bool:
        """Qualtrics bookkeeping by its English field name (dates, progress, display order); see layout.py."""
        lowered = self.name.lower()
        return lowered in METADATA_COLUMNS or lowered.endswith("_do") or lowered == "_recordid"


@dataclass(frozen=True)
class ExportRow:
    """One respondent: the file row number and the non-empty cells by column name (normalized to str)."""

    row_number: int
    cells: dict[str, str]


@dataclass
class QualtricsExport:
    """What `read_export` found: columns, respondent rows, and facts about the file."""

    path: Path
    format: str
    sha256: str
    columns: list[ExportColumn]
    rows: list[ExportRow] = field(default_factory=list)
    header_rows: int = 2

    @property
    def has_import_ids(self) -> bool:
        """Newer exports carry a third header row of ImportId objects (stable across renamed columns)."""
        return self.header_rows == 3

    @property
    def is_legacy(self) -> bool:
        """The legacy exporter's layout: row 1 is V1 … V10 (the metadata fields) before the questions."""
        return bool(self.columns) and self.columns[0].name == "V1"

    @property
    def response_id_column(self) -> str | None:
        names = {c.name for c in self.columns}
        return next((n for n in RESPONSE_ID_COLUMNS if n in names), None)


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index (0 -> A, 26 -> AA), for error messages."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = _COLUMN_LETTERS[rem] + letters
    return letters


def normalize_cell(value: Any) -> str | None:
    """A cell as text (identical for .xlsx and .csv of the same export); blank cells become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime | date | time):
        text = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    else:
        text = str(value)
    return text if text.strip() else None


#: What a damaged workbook raises while openpyxl inflates and parses it (zip, deflate, XML parsers,
#: missing parts); every one of them is the file's fault, not ours.
_DAMAGED = (zipfile.BadZipFile, zlib.error, KeyError, IndexError, EOFError, OSError, ValueError, SyntaxError)


def _why(exc: BaseException) -> str:
    """`BadZipFile: File is not a zip file`, `zlib.error: Error -3 while decompressing data …` (one line)."""
    name = type(exc).__name__
    if name.islower():  # zlib.error and the like say little without their module
        name = f"{type(exc).__module__}.{name}"
    detail = " ".join(str(exc).split())[:120]
    return f"{name}: {detail}" if detail else name


def _read_xlsx(path: Path, sheet: str | None) -> tuple[list[list[str | None]], list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except _DAMAGED as exc:
        raise ExportError(f"{path.name}: not a readable .xlsx workbook ({_why(exc)})") from exc
    try:
        names = list(workbook.sheetnames)
        if sheet is not None and sheet not in names:
            raise ExportError(f"{path.name}: no sheet named {sheet!r} (sheets: {', '.join(names)})")
        title = sheet if sheet is not None else (names[0] if names else "?")
        try:  # the sheet's XML is inflated and parsed only here, row by row
            worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
            rows = [[normalize_cell(v) for v in row] for row in worksheet.iter_rows(values_only=True)]
        except _DAMAGED as exc:
            raise ExportError(
                f"{path.name}: damaged .xlsx workbook: sheet {title!r} cannot be read ({_why(exc)})"
            ) from exc
        return rows, names
    finally:
        workbook.close()


def _decode(path: Path, what: str) -> str:
    """The file as text: UTF-8 (with or without BOM), or UTF-16 with a BOM (Qualtrics' TSV download)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExportError(f"{path.name}: UTF-16 text broken at byte {exc.start}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError(
            f"{path.name}: not UTF-8 text at byte {exc.start} (Qualtrics exports {what} as UTF-8)"
        ) from exc


def _read_delimited(path: Path, delimiter: str, what: str) -> list[list[str | None]]:
    text = _decode(path, what)
    if "\x00" in text:
        raise ExportError(f"{path.name}: binary content, not a {what} export")
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    rows: list[list[str | None]] = []
    try:
        for row in reader:
            rows.append([normalize_cell(v) for v in row])
    except csv.Error as exc:
        raise ExportError(f"{path.name}: malformed {what} at line {reader.line_num} ({exc})") from exc
    return rows


def _import_object(cell: str | None) -> dict[str, Any] | bool | None:
    """The ImportId object of a third-row cell, None for a blank cell, False when it is not an ImportId cell."""
    if cell is None:
        return None
    if not cell.lstrip().startswith("{"):
        return False
    try:
        parsed = json.loads(cell)
    except json.JSONDecodeError:
        return False
    return parsed if isinstance(parsed, dict) and "ImportId" in parsed else False


def _duplicate_check(path: Path, names: list[str | None]) -> None:
    for i, name in enumerate(names):
        if name is None:
            raise ExportError(f"{path.name}: row 1, column {column_letter(i)}: empty question ID in the header row")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        assert name is not None
        if name in seen:
            raise ExportError(
                f"{path.name}: row 1: duplicate question ID {name!r} "
                f"(columns {column_letter(seen[name])} and {column_letter(i)})"
            )
        seen[name] = i


def _header(path: Path, rows: list[list[str | None]]) -> tuple[list[ExportColumn], int]:
    """Validate the header rows; returns the columns and how many rows the header takes (2 or 3).

    A Qualtrics export is recognised by its structure, never by English header text: question IDs in
    row 1 (Q1, Q2_3_TEXT), a response-id column, the legacy V1 … V10 layout, or a row of ImportIds.
    """
    names_row = rows[0]
    width = max((i + 1 for i, v in enumerate(names_row) if v is not None), default=0)
    names = [v.strip() if v is not None else None for v in names_row[:width]]
    objects: list[dict[str, Any] | bool | None] = []
    if len(rows) >= 3:
        objects = [_import_object(c) for c in (rows[2] + [None] * width)[:width]]
    has_import_row = any(isinstance(o, dict) for o in objects) and all(o is not False for o in objects)
    looks_like_ids = [n for n in names if n is not None and QID_PATTERN.match(n)]
    has_response_id = any(n in RESPONSE_ID_COLUMNS for n in names if n)
    legacy = bool(names) and names[0] == "V1"
    if not (looks_like_ids or has_response_id or legacy or has_import_row):
        present = [n for n in names if n is not None]
        shown = ", ".join(repr(n[:40]) for n in present[:4]) + (", …" if len(present) > 4 else "")
        if present and all(_IDENTIFIER.match(n) and len(n) <= 40 for n in present):
            raise ExportError(
                f"{path.name}: not a Qualtrics export: header row 1 has no question IDs (Q1, Q2_3_TEXT, …) "
                f"and no ResponseId column (found {shown})"
            )
        raise ExportError(
            f"{path.name}: no header row: row 1 holds answers or text ({shown}) where a Qualtrics export "
            "has question IDs such as Q1, Q2_3_TEXT"
        )
    _duplicate_check(path, names)
    if len(rows) < 2:
        raise ExportError(f"{path.name}: not a Qualtrics export: no question-text row below the header row")
    texts = (rows[1] + [None] * width)[:width]
    header_rows = 3 if has_import_row else 2
    _check_text_row(path, texts, rows[header_rows:])
    columns = []
    for i in range(width):
        obj = objects[i] if has_import_row else None
        import_id = str(obj["ImportId"]) if isinstance(obj, dict) else None
        choice = obj.get("choiceId") if isinstance(obj, dict) else None
        columns.append(
            ExportColumn(
                index=i,
                name=str(names[i]),
                text=texts[i] or "",
                import_id=import_id,
                choice_id=None if choice is None else str(choice),
            )
        )
    return columns, header_rows


def _check_text_row(path: Path, texts: list[str | None], below: list[list[str | None]]) -> None:
    """Refuse a second row that is a respondent's answers: the question-text row was cut off the export."""
    filled = [(i, t) for i, t in enumerate(texts) if t is not None]
    if not filled:
        raise ExportError(f"{path.name}: row 2 is empty where Qualtrics puts the question texts")
    answers_below: dict[int, set[str]] = {i: set() for i, _ in filled}
    for row in below:
        for i, values in answers_below.items():
            cell = row[i] if i < len(row) else None
            if cell is not None:
                values.add(cell)
    repeated = [i for i, t in filled if t in answers_below[i]]
    if len(repeated) * 2 > len(filled):
        raise ExportError(
            f"{path.name}: row 2 looks like a respondent's answers (e.g. column {column_letter(repeated[0])}: "
            f"{texts[repeated[0]]!r} recurs below), not the question-text row; is that row missing?"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_export(path: str | Path, sheet: str | None = None) -> QualtricsExport:
    """Parse an export: header row of QIDs, question-text row, optional ImportId row, then respondents."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a directory; give the export file (.xlsx, .csv or .tsv) inside it")
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    suffix = path.suffix.lower()
    sheets: list[str] = []
    if suffix in (".xlsx", ".xlsm"):
        (rows, sheets), fmt = _read_xlsx(path, sheet), "xlsx"
    elif suffix == ".csv":
        rows, fmt = _read_delimited(path, ",", "CSV"), "csv"
    elif suffix == ".tsv":
        rows, fmt = _read_delimited(path, "\t", "TSV"), "tsv"
    else:
        raise ExportError(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; expected a .xlsx, .csv or .tsv export"
        )
    while rows and all(v is None for v in rows[-1]):
        rows.pop()
    if not rows:
        raise ExportError(f"{path.name}: the file is empty")
    try:
        columns, header_rows = _header(path, rows)
    except ExportError as exc:
        if sheet is None and len(sheets) > 1:
            raise ExportError(
                f"{exc} in sheet {sheets[0]!r}; other sheets: {', '.join(sheets[1:])} (use --sheet)"
            ) from exc
        raise
    width = len(columns)
    export = QualtricsExport(path=path, format=fmt, sha256=file_sha256(path), columns=columns, header_rows=header_rows)
    for offset, values in enumerate(rows[header_rows:]):
        row_number = header_rows + offset + 1
        extra = [i for i, v in enumerate(values[width:], start=width) if v is not None]
        if extra:
            raise ExportError(
                f"{path.name}: row {row_number}, column {column_letter(extra[0])}: a value outside the header's "
                f"{width} columns"
            )
        cells = {columns[i].name: v for i, v in enumerate(values[:width]) if v is not None}
        if cells:
            export.rows.append(ExportRow(row_number=row_number, cells=cells))
    if not export.rows:
        raise ExportError(f"{path.name}: the export has header rows but no respondent rows")
    return export
