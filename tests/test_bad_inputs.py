"""A corpus of bad inputs run through the CLI on a database that holds data: each ends with exit code 2 and
exactly one `error:` line, never a traceback, and changes no table (a failed run's ingest_run row aside)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy.engine import Engine

from tests.support.snapshot import last_ingest_run_id, new_ingest_runs, table_digests

SHEETS = "data/paper-artifact/failure-analysis"
CODEBOOK = "codebook/onnx-converter-failures.yaml"
DIM = "dimensions:\n  - key: a\n    codes: {1: A}\n"


def _file(name: str, content: str | bytes) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, _shared: Path) -> list[str]:
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return [str(path)]

    return make


def _codebook(text: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, shared: ["label", "codebook", "load", *_file("book.yaml", text)(tmp, shared)]


def _campaign(toml: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, shared: ["experiment", "run", *_file("campaign.toml", toml)(tmp, shared)]


def _sheet(change: Callable[[openpyxl.Workbook], None]) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, shared: Path) -> list[str]:
        path = tmp / "FailureAnalysis.xlsx"
        shutil.copy(shared / SHEETS / "FailureAnalysis.xlsx", path)
        wb = openpyxl.load_workbook(path)
        change(wb)
        wb.save(path)
        return ["label", "import-sheet", str(path)]

    return make


def _args(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, _shared: [a.replace("{tmp}", str(tmp)) for a in args]


def _billion_laughs() -> str:
    levels = ["&a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [{','.join([f'*{prev}'] * 9)}]")
    return "name: x\nversion: [" + ",\n  ".join(levels) + "]\n" + DIM


def _rename_type(wb: openpyxl.Workbook) -> None:
    wb["PyTorch"]["E1"] = "Type By Num"


def _shift(wb: openpyxl.Workbook) -> None:
    wb["PyTorch"].insert_rows(1, 3)


def _bad_code(wb: openpyxl.Workbook) -> None:
    wb["tf2onnx"]["E50"] = 99


#: (case, how to make the command line, a fragment of its error line, extra environment)
CASES: list[tuple[str, Callable[[Path, Path], list[str]], str, dict[str, str]]] = [
    # codebooks
    ("duplicate code", _codebook("name: x\ndimensions:\n  - key: a\n    codes: {1: A, 1: B}\n"), "duplicate key 1", {}),
    (
        "duplicate key in a dimension",
        _codebook("name: x\ndimensions:\n  - key: a\n    key: b\n    codes: {1: A}\n"),
        "duplicate key 'key'",
        {},
    ),
    ("alias bomb under version", _codebook(_billion_laughs()), "aliases would expand", {}),
    ("version not a scalar", _codebook("name: x\nversion: {a: 1}\n" + DIM), "version: expected a short scalar", {}),
    (
        "label too long",
        _codebook("name: x\ndimensions:\n  - key: a\n    codes: {1: " + "x" * 300 + "}\n"),
        "at most 200 characters",
        {},
    ),
    (
        "binary codebook",
        lambda t, s: ["label", "codebook", "load", *_file("b.yaml", b"PK\x03\x04\xff")(t, s)],
        "not UTF-8",
        {},
    ),
    # coding sheets
    ("renamed code column", _sheet(_rename_type), "no column 'Type By Number' for dimension 'cause'", {}),
    ("header shifted down", _sheet(_shift), "PyTorch row 4: the header", {}),
    ("code not in the codebook", _sheet(_bad_code), "code 99 is not in dimension 'cause'", {}),
    (
        "not a workbook",
        lambda t, s: ["label", "import-sheet", *_file("x.xlsx", b"not a zip")(t, s)],
        "cannot open as an Excel workbook",
        {},
    ),
    # campaign specs: refused before a campaign or model row exists
    ("empty sources", _campaign("sources = []\n"), "field 'sources': must not be empty", {}),
    ("empty converters", _campaign("converters = []\n"), "field 'converters': must not be empty", {}),
    ("negative memory", _campaign("memory_mb = -5\n"), "field 'memory_mb': must be at least 0", {}),
    ("opset as text", _campaign('opsets = ["17"]\n'), "field 'opsets' item 1", {}),
    ("unknown spec field", _campaign("colour = 1\n"), "unknown field 'colour'", {}),
    ("empty --sources", _args("experiment", "run", "--sources", ""), "field 'sources': must not be empty", {}),
    ("unknown source", _args("experiment", "run", "--sources", "nnsmith-onnx"), "unknown source 'nnsmith-onnx'", {}),
    ("unknown preset", _args("experiment", "run", "--preset", "huge"), "unknown --preset 'huge'", {}),
    # enumerated options
    ("issues --state", _args("issues", "list", "--state", "bogus"), "choose one of open, closed", {}),
    ("mine --state", _args("mine", "github", "--repo", "a/b", "--state", "merged"), "open, closed, all", {}),
    ("agreement --format", _args("label", "agreement", "--format", "xml"), "choose one of table, json, csv", {}),
    ("export --format", _args("export", "--format", "xlsx", "--out", "{tmp}/out"), "csv, parquet, sqlite", {}),
    ("analysis", _args("experiment", "analyze", "everything"), "unknown analysis 'everything'", {}),
    # schema, SQL, paths
    ("downgrade without --yes", _args("db", "downgrade", "base"), "would drop", {}),
    ("unknown revision", _args("db", "downgrade", "nosuchrev"), "nosuchrev", {}),
    ("write through export query", _args("export", "query", "DELETE FROM coding", "--out", "{tmp}/q"), "refused", {}),
    ("survey import of a folder", _args("survey", "import", "{tmp}", "--survey", "s"), "is a directory", {}),
    ("missing results folder", _args("experiment", "import-results", "{tmp}/none"), "no such directory", {}),
    ("issue reference", _args("issues", "show", "acme"), "expected owner/name#number", {}),
    # configuration and secrets
    (
        "Label Studio URL with credentials",
        _args("label", "pull"),
        "cannot reach Label Studio at http://coder:***@127.0.0.1:1",
        {"INTEROP_LABEL_STUDIO_URL": "http://coder:s3cret@127.0.0.1:1", "INTEROP_LABEL_STUDIO_API_KEY": "k"},
    ),
]


@pytest.fixture
def stocked(cli, shared_dir: Path) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    """A database holding a codebook, the pilot's codings and their ingest_run rows."""
    assert cli("label", "codebook", "load", str(shared_dir / CODEBOOK)).exit_code == 0
    assert cli("label", "import-sheet", str(shared_dir / SHEETS / "PilotStudy.xlsx")).exit_code == 0
    return cli  # type: ignore[no-any-return]


def test_each_bad_input_is_one_error_line_exit_2_and_changes_nothing(  # type: ignore[no-untyped-def]
    stocked, engine: Engine, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems: list[str] = []
    for n, (case, make, fragment, env) in enumerate(CASES):
        work = tmp_path / f"case{n}"
        work.mkdir()
        args = make(work, shared_dir)
        before, last_run = table_digests(engine), last_ingest_run_id(engine)
        with monkeypatch.context() as m:
            m.chdir(work)
            for key, value in env.items():
                m.setenv(key, value)
            result = stocked(*args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        runs = new_ingest_runs(engine, last_run)
        if result.exit_code != 2:
            problems.append(f"{case}: exit code {result.exit_code}")
        elif len(lines) != 1 or not lines[0].startswith("error: ") or fragment not in lines[0]:
            problems.append(f"{case}: {result.output!r}")
        elif "Traceback" in result.output or "s3cret" in result.output:
            problems.append(f"{case}: traceback or secret in {result.output!r}")
        elif table_digests(engine) != before:
            problems.append(f"{case}: a table changed")
        elif any(status != "failed" for _, status in runs):
            problems.append(f"{case}: ingest_run rows {runs}")
        elif any(p.name in ("out", "q") for p in work.iterdir()):
            problems.append(f"{case}: left output behind")
    assert not problems, "\n".join(problems)


def test_a_database_url_with_a_non_numeric_port_is_one_error_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.test_cli_errors import assert_one_error_line, run

    for command in (["info"], ["survey", "list"], ["db", "upgrade"], ["export", "--out", "o"]):
        code, output = run(command, tmp_path, monkeypatch, INTEROP_DATABASE_URL="postgresql://u:pw@db:port/lab")
        assert code == 2, (command, output)
        assert_one_error_line(output, "port 'port' is not a number", "postgresql://u:***@db:port/lab")
