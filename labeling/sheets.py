"""Read the study's Excel coding sheets into codings: final codes, per-rater sheets and side-by-side raters."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.errors import InteropError
from labeling.codebook import CodebookSpec, DimensionSpec
from labeling.store import parse_issue_url

CONSENSUS_CODER = "study"
EMPTY_LABELS = {"", "#n/a", "n/a", "na", "-"}
#: How far down a misplaced header row is looked for (to name it instead of skipping the sheet).
HEADER_SCAN = 20


class SheetError(InteropError):
    """A cell or layout the importer cannot accept: names file, sheet, row and column."""


@dataclass
class SheetCoding:
    """One coder's codes for one issue, read from one row (or row half) of a sheet."""

    repository: str
    number: int
    url: str
    title: str | None
    coder: str
    codes: dict[str, int]
    where: str
    sheet_id: Any = None
    note: str | None = None


@dataclass
class SheetStats:
    """What one sheet yielded: data rows read, codes read (all stored by the import), dimensions it codes."""

    rows: int = 0
    codes: int = 0
    dimensions: list[str] = field(default_factory=list)
    cross_checked: int = 0


@dataclass
class SheetRound:
    """Codings of one round as read from a workbook, plus the sheets they came from."""

    name: str
    kind: str  # final | raters | per-rater
    sheets: list[str] = field(default_factory=list)
    codings: list[SheetCoding] = field(default_factory=list)
    cross_checked: int = 0
    stats: dict[str, SheetStats] = field(default_factory=dict)

    @property
    def coders(self) -> list[str]:
        return sorted({c.coder for c in self.codings})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def _header_map(row: tuple[Any, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, v in enumerate(row):
        if isinstance(v, str) and v.strip() and v.strip().casefold() not in out:
            out[v.strip().casefold()] = i
    return out


def _cell_code(value: Any, dim: DimensionSpec, where: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().casefold() in EMPTY_LABELS):
        return None
    if isinstance(value, bool):
        raise SheetError(f"{where}: {value!r} is not a code")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise SheetError(f"{where}: {value!r} is not a numeric code of dimension {dim.key!r}")
    if value not in dim.codes:
        raise SheetError(f"{where}: code {value} is not in dimension {dim.key!r} of the codebook")
    return value


def _check_label(value: Any, code: int | None, dim: DimensionSpec, where: str) -> None:
    """The label column must name the same code (label or alias), or be empty where there is no code."""
    text = "" if value is None else str(value).strip()
    if code is None:
        if text.casefold() not in EMPTY_LABELS:
            raise SheetError(f"{where}: label {text!r} without a code")
        return
    if text.casefold() in EMPTY_LABELS:
        return
    found = dim.lookup(text)
    if found is None or found.code != code:
        expected = dim.codes[code].label
        raise SheetError(f"{where}: label {text!r} does not match code {code} ({expected!r})")


def _check_conditions(codes: dict[str, int], present: set[str], spec: CodebookSpec, where: str) -> None:
    """Required dimensions must be coded; conditional ones exactly when their condition holds."""
    for dim in spec.dimensions:
        if dim.key not in present:
            continue
        if dim.required_when and not all(k in present for k in dim.required_when):
            continue
        applies = dim.applies(codes)
        if applies and dim.key not in codes:
            raise SheetError(f"{where}: {dim.column or dim.key!r} is empty but required here")
        if dim.required_when and not applies and dim.key in codes:
            cond = ", ".join(f"{k} in {list(v)}" for k, v in dim.required_when.items())
            raise SheetError(f"{where}: {dim.column or dim.key!r} is coded but applies only when {cond}")


def _issue_cells(row: tuple[Any, ...], cols: dict[str, int], where: str) -> tuple[str, int, str, str | None] | None:
    url = row[cols["url"]] if cols["url"] < len(row) else None
    if url is None or not str(url).strip():
        return None
    parsed = parse_issue_url(str(url))
    if parsed is None:
        raise SheetError(f"{where} column 'URL': {url!r} is not a GitHub issue URL")
    title_col = cols.get("title")
    title = row[title_col] if title_col is not None and title_col < len(row) else None
    return parsed[0], parsed[1], str(url).strip(), (str(title).strip() if title else None)


def _read_single(ws: Any, rows: list[tuple[Any, ...]], spec: CodebookSpec, coder: str, file: str) -> list[SheetCoding]:
    """A sheet with one header row, one issue per row, the codebook's `column`s (and `label_column`s)."""
    cols = _header_map(rows[0])
    dims = [d for d in spec.dimensions if d.column and d.column.casefold() in cols]
    _check_columns(f"{file}!{ws.title} row 1", set(cols), dims, spec)
    out: list[SheetCoding] = []
    for r, row in enumerate(rows[1:], start=2):
        where = f"{file}!{ws.title} row {r}"
        issue = _issue_cells(row, cols, where)
        if issue is None:
            # rows without URL are legends or summaries; an id with codes but no URL is a broken row
            id_col = cols.get("id")
            has_id = id_col is not None and id_col < len(row) and row[id_col] is not None
            if has_id and any(row[cols[d.column.casefold()]] is not None for d in dims if d.column):
                raise SheetError(f"{where}: codes without an issue URL")
            continue
        codes: dict[str, int] = {}
        for dim in dims:
            col = cols[(dim.column or "").casefold()]
            at = f"{where} column {dim.column!r}"
            code = _cell_code(row[col] if col < len(row) else None, dim, at)
            if dim.label_column and dim.label_column.casefold() in cols:
                lcol = cols[dim.label_column.casefold()]
                _check_label(row[lcol] if lcol < len(row) else None, code, dim, f"{where} column {dim.label_column!r}")
            if code is not None:
                codes[dim.key] = code
        _check_conditions(codes, {d.key for d in dims}, spec, where)
        desc_col = cols.get("description")
        note = row[desc_col] if desc_col is not None and desc_col < len(row) else None
        out.append(
            SheetCoding(
                issue[0],
                issue[1],
                issue[2],
                issue[3],
                coder,
                codes,
                where,
                row[cols.get("id", 0)],
                str(note).strip() if note is not None and str(note).strip() else None,
            )
        )
    return out


def _read_raters(ws: Any, rows: list[tuple[Any, ...]], spec: CodebookSpec, file: str) -> list[SheetCoding]:
    """Row 1 names the raters above their block of code columns; row 2 holds the headers."""
    raters: list[tuple[int, str]] = [(i, str(v).strip()) for i, v in enumerate(rows[0]) if v and str(v).strip()]
    header = rows[1]
    cols = _header_map(header)
    by_column = {d.column.casefold(): d for d in spec.dimensions if d.column}
    out: list[SheetCoding] = []
    blocks: dict[str, list[str]] = {}
    for n, (start, rater) in enumerate(raters):
        end = raters[n + 1][0] if n + 1 < len(raters) else len(header)
        block = {
            i: by_column[str(header[i]).strip().casefold()]
            for i in range(start, end)
            if header[i] and str(header[i]).strip().casefold() in by_column
        }
        if not block:
            raise SheetError(f"{file}!{ws.title} row 2: no codebook column under rater {rater!r}")
        _check_columns(f"{file}!{ws.title} row 2 ({rater})", set(), list(block.values()), spec)
        blocks[rater] = [d.key for d in block.values()]
        for other, keys in blocks.items():  # every rater codes the same dimensions
            lost = [k for k in keys if k not in blocks[rater]] or [k for k in blocks[rater] if k not in keys]
            if lost:
                short, dim = (rater, spec.dimension(lost[0])) if lost[0] in keys else (other, spec.dimension(lost[0]))
                raise SheetError(
                    f"{file}!{ws.title} row 2 ({short}): no column {dim.column!r} for dimension {dim.key!r}, "
                    "although the other rater's block has it (renamed?)"
                )
        for r, row in enumerate(rows[2:], start=3):
            where = f"{file}!{ws.title} row {r}"
            issue = _issue_cells(row, cols, where)
            if issue is None:
                continue
            codes: dict[str, int] = {}
            for i, dim in block.items():
                code = _cell_code(row[i] if i < len(row) else None, dim, f"{where} column {header[i]!r} ({rater})")
                if code is not None:
                    codes[dim.key] = code
            _check_conditions(codes, {d.key for d in block.values()}, spec, f"{where} ({rater})")
            out.append(
                SheetCoding(
                    issue[0], issue[1], issue[2], issue[3], rater, codes, f"{where} ({rater})", row[cols.get("id", 0)]
                )
            )
    return out


def _check_columns(where: str, headers: set[str], dims: list[DimensionSpec], spec: CodebookSpec) -> None:
    """A header that lost a code column (renamed, deleted) must not silently drop that dimension: its label
    column without it, or a conditional dimension without the dimension it depends on, is a broken layout."""
    present = {d.key for d in dims}
    for dim in spec.dimensions:
        if dim.key in present or not dim.column:
            continue
        if dim.label_column and dim.label_column.casefold() in headers:
            raise SheetError(
                f"{where}: no column {dim.column!r} for dimension {dim.key!r}, although its label column "
                f"{dim.label_column!r} is there (renamed?)"
            )
    for dim in dims:
        for other in dim.required_when:
            if other not in present:
                needed = spec.dimension(other)
                raise SheetError(
                    f"{where}: column {dim.column!r} ({dim.key}, coded when {other} is "
                    f"{' or '.join(map(str, dim.required_when[other]))}) is there, but no column "
                    f"{needed.column or needed.key!r} for dimension {other!r} (renamed?)"
                )


def _check_same_columns(file: str, kind: str, per_sheet: dict[str, list[str]], spec: CodebookSpec) -> None:
    """Sheets of one round code the same dimensions: a column missing from one of them was renamed or lost."""
    for sheet, keys in per_sheet.items():
        for other, other_keys in per_sheet.items():
            missing = [k for k in other_keys if k not in keys]
            if missing:
                dim = spec.dimension(missing[0])
                raise SheetError(
                    f"{file}!{sheet}: no column {dim.column or dim.key!r} for dimension {dim.key!r}, although "
                    f"{other!r} of the same round ({kind}) has it (renamed?)"
                )


def _check_final_columns(file: str, sheet: str, keys: list[str], spec: CodebookSpec) -> None:
    """The study's final codes carry every required dimension the codebook gives a column."""
    for dim in spec.dimensions:
        if dim.required and dim.column and dim.key not in keys:
            raise SheetError(
                f"{file}!{sheet} row 1: no column {dim.column!r} for the required dimension {dim.key!r} "
                "(a sheet of final codes needs every required dimension; renamed?)"
            )


def _misplaced_header(rows: list[tuple[Any, ...]], spec: CodebookSpec, where: str) -> str | None:
    """Why a sheet that looks like a coding sheet is not one of the known layouts (None: not a coding sheet)."""
    columns = {d.column.casefold(): d.column for d in spec.dimensions if d.column}
    for i, row in enumerate(rows[:HEADER_SCAN], start=1):
        cells = _header_map(row)
        codes = [columns[c] for c in cells if c in columns]
        if "url" in cells and codes:
            return (
                f"{where} row {i}: the header ('URL' and the code columns) must be row 1 (row 2 under the "
                f"raters' names); remove the {i - 1} row(s) above it"
            )
        if "url" in cells:
            return (
                f"{where} row {i}: a 'URL' column but none of the codebook's code columns "
                f"({', '.join(columns.values())}); renamed?"
            )
        if codes:
            return f"{where} row {i}: code columns ({', '.join(codes)}) but no 'URL' column to find the issues by"
        if any(re.match(r"^r\d+ ", k) for k in cells):
            return f"{where} row {i}: an inter-rater table must have its header ('id', 'R1 …') in row 2"
    return None


def _sheet_kind(rows: list[tuple[Any, ...]], spec: CodebookSpec) -> str | None:
    columns = {d.column.casefold() for d in spec.dimensions if d.column}
    if not rows:
        return None
    first = _header_map(rows[0])
    if "url" in first and columns & set(first):
        return "single"
    if len(rows) > 1:
        second = _header_map(rows[1])
        if "url" in second and columns & set(second) and any(v for v in rows[0]):
            return "raters"
    if any(re.match(r"^r\d+ ", k) for k in first) or (
        len(rows) > 1 and any(re.match(r"^r\d+ ", k) for k in _header_map(rows[1]))
    ):
        return "interrater"
    return None


def _common_suffix(names: list[str]) -> str:
    words = [n.split() for n in names]
    common: list[str] = []
    for parts in zip(*[list(reversed(w)) for w in words], strict=False):
        if len({p.casefold() for p in parts}) != 1:
            break
        common.insert(0, parts[0])
    return " ".join(common)


def _stats(codings: list[SheetCoding], spec: CodebookSpec, keys: list[str]) -> SheetStats:
    return SheetStats(
        rows=len({c.where.removesuffix(f" ({c.coder})") for c in codings}),  # raters share a row
        codes=sum(len(c.codes) for c in codings),
        dimensions=[d.key for d in spec.dimensions if d.key in keys],
    )


def read_workbook(
    path: str | Path,
    spec: CodebookSpec,
    sheets: list[str] | None = None,
    round_name: str | None = None,
    skipped: list[str] | None = None,
) -> list[SheetRound]:
    """All rounds a workbook holds; the summary tables right of the data are ignored (only named columns count).

    Every sheet is of a known layout and yields rows with all its round's columns, or the read stops naming
    the sheet and the column; sheets that are not coding sheets at all are listed in `skipped`."""
    import openpyxl

    path = Path(path)
    file = path.name
    try:
        wb = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except Exception as exc:  # openpyxl raises many types for unreadable files
        raise SheetError(f"{path}: cannot open as an Excel workbook ({type(exc).__name__})") from None
    try:
        names = wb.sheetnames
        for wanted in sheets or []:
            if wanted not in names:
                raise SheetError(f"{file}: no sheet {wanted!r} (sheets: {', '.join(names)})")
        stem = _slug(path.stem)
        final = SheetRound(stem, "final")
        per_rater = SheetRound(stem, "per-rater")
        raters: list[tuple[str, list[SheetCoding]]] = []
        interrater: list[tuple[str, list[tuple[Any, ...]]]] = []
        columns: dict[str, dict[str, list[str]]] = {"final": {}, "per-rater": {}, "raters": {}}
        for name in names:
            if sheets and name not in sheets:
                continue
            ws = wb[name]
            rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
            kind = _sheet_kind(rows, spec)
            if kind is None:
                problem = _misplaced_header(rows, spec, f"{file}!{name}")
                if problem:
                    raise SheetError(problem)
                if sheets:
                    raise SheetError(
                        f"{file}!{name}: not a coding sheet (no 'URL' column beside the codebook's code columns "
                        f"in row 1, or in row 2 under the raters' names)"
                    )
                if skipped is not None:
                    skipped.append(f"{name} (no 'URL' or code column in its first {HEADER_SCAN} rows)")
                continue
            if kind == "interrater":
                interrater.append((name, rows))
                continue
            coder_match = re.search(r"\s-\s*(\S+)\s*$", name)
            if kind == "single":
                coder = coder_match.group(1) if coder_match else CONSENSUS_CODER
                read = _read_single(ws, rows, spec, coder, file)
            else:
                read = _read_raters(ws, rows, spec, file)
            if not read:
                header_row = 2 if kind == "raters" else 1
                raise SheetError(
                    f"{file}!{name}: no data rows (no row below the header in row {header_row} has an "
                    "issue URL in column 'URL')"
                )
            header = _header_map(rows[1] if kind == "raters" else rows[0])
            keys = [d.key for d in spec.dimensions if d.column and d.column.casefold() in header]
            if kind == "single":
                target = per_rater if coder_match else final
                if target is final:
                    _check_final_columns(file, name, keys, spec)
                columns[target.kind][name] = keys
                target.codings.extend(read)
                target.sheets.append(name)
                target.stats[name] = _stats(read, spec, keys)
            else:
                columns["raters"][name] = keys
                raters.append((name, read))
    finally:
        wb.close()
    for kind, per_sheet in columns.items():
        _check_same_columns(file, kind, per_sheet, spec)
    rounds = [r for r in (final, per_rater) if r.codings]
    if raters:
        suffix = _common_suffix([n for n, _ in raters]) if len(raters) > 1 else raters[0][0]
        group = SheetRound(f"{stem}-{_slug(suffix)}" if suffix else f"{stem}-raters", "raters")
        for name, codings in raters:
            group.sheets.append(name)
            group.codings.extend(codings)
            group.stats[name] = _stats(codings, spec, columns["raters"][name])
        rounds.append(group)
    for name, rows in interrater:
        if not per_rater.codings:
            raise SheetError(f"{file}!{name}: inter-rater table without the per-rater sheets it summarizes")
        checked = _cross_check(file, name, rows, per_rater, spec)
        if not checked:
            raise SheetError(f"{file}!{name}: an inter-rater table without a single cell to check (layout changed?)")
        per_rater.cross_checked += checked
        per_rater.sheets.append(name)
        per_rater.stats[name] = SheetStats(
            rows=sum(1 for r in rows[2:] if any(v is not None for v in r)), cross_checked=checked
        )
    if not rounds:
        raise SheetError(f"{file}: no sheet with an 'URL' column and the codebook's code columns")
    if round_name:
        if len(rounds) > 1:
            kinds = ", ".join(f"{r.name} ({', '.join(r.sheets)})" for r in rounds)
            raise SheetError(f"{file}: holds several rounds ({kinds}); pick sheets with --sheet to name one round")
        rounds[0].name = round_name
    for r in rounds:
        _check_duplicates(r)
    return rounds


def _check_duplicates(rnd: SheetRound) -> None:
    seen: dict[tuple[str, int, str], SheetCoding] = {}
    for c in rnd.codings:
        key = (c.repository, c.number, c.coder)
        if key in seen and seen[key].codes != c.codes:
            raise SheetError(f"{c.where}: {c.url} coded again by {c.coder} with other codes than {seen[key].where}")
        seen[key] = c


def _cross_check(file: str, sheet: str, rows: list[tuple[Any, ...]], per_rater: SheetRound, spec: CodebookSpec) -> int:
    """The Interrater table repeats the per-rater codes side by side: every cell must agree with them."""
    titles, header = rows[0], rows[1]
    starts = [i for i, v in enumerate(header) if isinstance(v, str) and v.strip().casefold() == "id"]
    families: dict[str, dict[tuple[str, Any], dict[str, int]]] = defaultdict(dict)
    for c in per_rater.codings:
        sheet_name = c.where.split("!", 1)[1].split(" row ")[0]
        family = sheet_name.split(" Issues")[0].split(" - ")[0].strip().casefold()
        families[family][(c.coder, c.sheet_id)] = c.codes
    checked = 0
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(header)
        block_title = str(titles[start] or "").strip().casefold()
        matched = next((f for f in families if block_title.startswith(f) or f.startswith(block_title)), None)
        if matched is None:
            raise SheetError(f"{file}!{sheet} row 1: block {titles[start]!r} matches no per-rater sheet")
        columns: list[tuple[int, str, str]] = []
        for i in range(start + 1, end):
            m = re.match(r"^(r\d+)\s+(\w+?)s?$", str(header[i] or "").strip(), re.IGNORECASE)
            if m and m.group(2).casefold() in spec.keys:
                columns.append((i, m.group(1).upper(), m.group(2).casefold()))
        for r, row in enumerate(rows[2:], start=3):
            sheet_id = row[start] if start < len(row) else None
            if sheet_id is None:
                continue
            for i, coder, key in columns:
                codes = families[matched].get((coder, sheet_id))
                where = f"{file}!{sheet} row {r} column {header[i]!r}"
                if codes is None:
                    raise SheetError(f"{where}: id {sheet_id} is not in {coder}'s {matched} sheet")
                if codes.get(key) != row[i]:
                    raise SheetError(f"{where}: {row[i]!r} differs from {coder}'s sheet ({codes.get(key)!r})")
                checked += 1
    return checked
