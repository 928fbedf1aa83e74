"""Errors a user can fix end in one `error:` line and exit code 2, never a traceback, whatever raised them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app


def run(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    """`interop ARGS` in `tmp_path` with a fresh SQLite database unless `env` names another; (exit code, output)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTEROP_CONFIG", raising=False)
    monkeypatch.setenv("INTEROP_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    return result.exit_code, result.output


def assert_one_error_line(output: str, *fragments: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in lines[0], output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["export", "--out", "in-the-way"], ["in-the-way", "File exists"]),
        (["export", "query", "SELECT 1", "--out", "in-the-way"], ["in-the-way"]),
        (["db", "upgrade", "nosuchrev"], ["nosuchrev"]),
        (["db", "downgrade", "nosuchrev"], ["nosuchrev"]),
        (["label", "codebook", "load", "binary.yaml"], ["binary.yaml", "UTF-8"]),
        (["export", "--tables", "", "--out", "fresh"], ["--tables names no table"]),
        (["experiment", "import-results", "no-such-dir"], ["no-such-dir: no such directory"]),
        (["survey", "import", ".", "--survey", "s"], ["is a directory"]),
        (["export", "query", "SELECT 1", "--timeout", "-5", "--out", "fresh"], ["--timeout"]),
    ],
)
def test_bad_paths_revisions_and_files(
    args: list[str], fragments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in-the-way").write_text("a file where a directory should go")
    (tmp_path / "binary.yaml").write_bytes(b"PK\x03\x04\xc1\xff\x00binary")
    assert run(["db", "upgrade"], tmp_path, monkeypatch)[0] == 0  # a current schema: only the path is wrong
    code, output = run(args, tmp_path, monkeypatch)
    assert code == 2
    assert_one_error_line(output, *fragments)
    assert not (tmp_path / "fresh").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("notaurl", "not a usable database URL"),
        ("mysql://user@host/db", "no driver"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "database error"),
    ],
)
def test_bad_or_unreachable_database_urls(
    url: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run(["survey", "list"], tmp_path, monkeypatch, INTEROP_DATABASE_URL=url)
    assert code == 2
    assert_one_error_line(output, fragment)


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("x = [\n", ["not valid TOML"]),
        ('databse_url = "sqlite://"\n', ["unknown setting 'databse_url'", "database_url"]),
        (None, ["does not exist"]),
    ],
)
def test_config_files_that_cannot_be_used(
    content: str | None, fragments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf.toml"
    if content is not None:
        config.write_text(content)
    code, output = run(["survey", "list"], tmp_path, monkeypatch, INTEROP_CONFIG=str(config))
    assert code == 2
    assert_one_error_line(output, *fragments)


def test_debug_mode_keeps_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in-the-way").write_text("x")
    with pytest.raises(FileExistsError):
        run(["export", "--out", "in-the-way"], tmp_path, monkeypatch, INTEROP_DEBUG="1")
