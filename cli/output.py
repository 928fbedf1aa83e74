"""The one output contract of the read commands: `--format table|json|csv` to stdout or `--out FILE`.

JSON is one document: an array of row objects for a command that shows one table, an object of named arrays (and
facts) for one that shows several. CSV is the main table with a header row. Tables have one style, numbers
right-aligned, and are never cut when stdout is not a terminal."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import typer
from rich import box
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

Format = Literal["table", "json", "csv"]
#: Wide enough that no identifier is ever wrapped or cut when the output goes to a pipe or a file.
UNLIMITED_WIDTH = 100_000

FORMAT_HELP = "Output: table (for reading), json or csv (for scripts)."
OUT_HELP = "Write the output to this file instead of stdout."


def format_option(default: str = "table") -> Any:
    """The `--format` option of every read command (its choices come from the parameter's Literal type)."""
    return typer.Option(default, "--format", "-f", case_sensitive=False, help=FORMAT_HELP)


def out_option() -> Any:
    """The `--out FILE` option of every read command."""
    return typer.Option(None, "--out", "-o", dir_okay=False, help=OUT_HELP)


def split_list(values: Iterable[str] | str | None) -> list[str]:
    """A list option given as repeated flags, comma lists, or both: `--x a --x b,c` -> [a, b, c]."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    return [part.strip() for value in items for part in value.split(",") if part.strip()]


def make_console(file: IO[str] | None = None) -> Console:
    """A console for command output: the terminal's width on a terminal, unlimited width for pipes and files."""
    terminal = file is None and sys.stdout.isatty()
    return Console(
        file=file,
        width=None if terminal else UNLIMITED_WIDTH,
        highlight=False,
        soft_wrap=True,
    )


def new_table(*headers: str, numeric: Iterable[str] = (), title: str | None = None) -> Table:
    """A table in the one style of the CLI: numbers right-aligned, other cells wrap on a narrow terminal (never cut)."""
    from rich.table import Table as RichTable

    right = set(numeric)
    table = RichTable(title=title, title_justify="left", box=box.HEAVY_HEAD, header_style="bold")
    for header in headers:
        if header in right:
            table.add_column(header, justify="right", no_wrap=True)
        else:
            table.add_column(header, overflow="fold")
    return table


def frame_table(frame: pd.DataFrame, title: str | None = None, headers: dict[str, str] | None = None) -> Table:
    """A DataFrame as a table: numeric columns right-aligned, missing values as —."""
    names = headers or {}
    numeric = [names.get(c, c) for c in frame.columns if frame[c].dtype.kind in "iuf"]
    table = new_table(*(names.get(c, c) for c in frame.columns), numeric=numeric, title=title)
    for row in frame.itertuples(index=False):
        table.add_row(*(cell(v) for v in row))
    return table


def cell(value: Any) -> str:
    """One table cell: missing values as —, floats to 3 significant digits, lists joined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    try:
        import pandas as pd

        if not isinstance(value, dict | str) and pd.isna(value):
            return "—"
    except (TypeError, ValueError):
        pass
    return str(value)


def json_ready(value: Any) -> Any:
    """Nested rows for a JSON document: NaN becomes null (JSON has no NaN), tuples become lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple | list):
        return [json_ready(x) for x in value]
    if isinstance(value, dict):
        return {k: json_ready(x) for k, x in value.items()}
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready objects: missing values null, times ISO 8601, numbers stay numbers."""
    return list(json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False)))


def to_csv(frame: pd.DataFrame) -> str:
    """The table as CSV with a header row; list and mapping cells as JSON text."""
    encoded = frame.copy()
    for col in encoded.columns:
        if encoded[col].map(lambda v: isinstance(v, list | tuple | dict)).any():
            encoded[col] = encoded[col].map(
                lambda v: json.dumps(v, default=str) if isinstance(v, list | tuple | dict) else v
            )
    return str(encoded.to_csv(index=False))


@contextmanager
def _target(out: Path | None) -> Iterator[IO[str] | None]:
    """stdout, or OUT written as OUT.partial and renamed when complete (nothing half-written)."""
    if out is None:
        yield None
        return
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def emit(
    fmt: str,
    out: Path | None,
    frame: pd.DataFrame,
    *,
    document: Any = None,
    render: Callable[[Console], None] | None = None,
) -> None:
    """Write FRAME (or DOCUMENT for json, RENDER for table) in FMT to stdout or OUT."""
    with _target(out) as fh:
        if fmt == "json":
            text = json.dumps(records(frame) if document is None else document, indent=2, ensure_ascii=False)
            _write(fh, text + "\n")
        elif fmt == "csv":
            _write(fh, to_csv(frame))
        else:
            console = make_console(fh)
            if render is not None:
                render(console)
            else:
                console.print(frame_table(frame))


def _write(fh: IO[str] | None, text: str) -> None:
    if fh is None:
        typer.echo(text, nl=False)
    else:
        fh.write(text)
