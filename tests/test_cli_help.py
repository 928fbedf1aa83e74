"""Every --help text shows what was written (no Rich markup swallowing `[...]`), every enumerated option lists
its choices there and refuses any other value in one `error:` line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from cli.common import choices_of
from cli.main import app
from tests.test_cli_errors import assert_one_error_line, run


def commands(cmd: Any = None, path: tuple[str, ...] = ("interop",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    cmd = cmd or typer.main.get_command(app)
    yield path, cmd
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from commands(sub, (*path, name))


def test_no_help_text_loses_brackets_to_rich_markup() -> None:
    swallowed = []
    for path, cmd in commands():
        texts = [("help", cmd.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in cmd.params]
        for what, raw in texts:
            if Text.from_markup(raw).plain != raw.replace("\\[", "["):
                swallowed.append(f"{' '.join(path)} {what}: {raw!r}")
    assert not swallowed, swallowed


def test_relink_help_shows_the_fix_rules_table_name() -> None:
    result = CliRunner().invoke(app, ["issues", "relink", "--help"], env={"COLUMNS": "200"})
    assert "[fix_rules.NAME] in interop.toml" in result.output


def test_mine_repos_help_shows_the_list_files_table() -> None:
    result = CliRunner().invoke(app, ["mine", "repos", "--help"], env={"COLUMNS": "200"})
    assert "[repos] table (role = [owner/name, …])" in result.output and "--batch-size" in result.output


#: Every enumerated option of the CLI, with its choices: a new one must be added here (the test below checks).
ENUMERATED = {
    ("interop issues sample", "state"): ["open", "closed"],
    ("interop issues list", "state"): ["open", "closed"],
    ("interop mine github", "state"): ["open", "closed", "all"],
    ("interop mine github", "timelines"): ["all", "closed", "none"],
    ("interop mine github", "api"): ["graphql", "rest"],
    ("interop export", "fmt"): ["csv", "parquet", "sqlite", "sql"],
    ("interop export", "dialect"): ["sqlite", "postgresql"],
    ("interop issues list", "label_mode"): ["any", "all"],
    ("interop export query", "fmt"): ["table", "json", "csv", "parquet", "sqlite"],
    ("interop label agreement", "fmt"): ["table", "json", "csv"],
    ("interop label taxonomy", "fmt"): ["table", "json", "csv"],
    ("interop label finals", "fmt"): ["table", "json", "csv"],
    ("interop label themes", "fmt"): ["table", "json", "csv"],
    ("interop label rounds", "fmt"): ["table", "json", "csv"],
    ("interop label suggest", "fmt"): ["table", "json", "csv"],
    ("interop issues list", "fmt"): ["table", "json", "csv"],
    ("interop issues show", "fmt"): ["table", "json", "csv"],
    ("interop survey list", "fmt"): ["table", "json", "csv"],
    ("interop survey counts", "fmt"): ["table", "json", "csv"],
    ("interop survey crosstab", "fmt"): ["table", "json", "csv"],
    ("interop experiment status", "fmt"): ["table", "json", "csv"],
    ("interop experiment analyze", "fmt"): ["table", "json", "csv"],
    ("interop experiment run", "preset"): ["quick", "real"],
    ("interop experiment analyze", "analysis"): ["outcomes", "operators", "sequences"],
    ("interop experiment analyze", "level"): ["source", "onnx"],
    ("interop experiment failures", "fmt"): ["table", "json", "csv"],
    ("interop experiment operators", "fmt"): ["table", "json", "csv"],
    ("interop labelstudio status", "fmt"): ["table", "json", "csv"],
}


def test_the_enumerated_options_are_exactly_the_known_ones() -> None:
    found = {(" ".join(path), p.name): choices_of(p) for path, cmd in commands() for p in cmd.params if choices_of(p)}
    assert found == ENUMERATED


def test_enumerations_match_the_code_that_uses_them() -> None:
    from experiments.spec import PRESETS
    from miners.github.miner import TIMELINE_CHOICES
    from miners.github.source import STATES

    assert sorted(ENUMERATED[("interop mine github", "state")]) == sorted(STATES)
    assert sorted(ENUMERATED[("interop mine github", "timelines")]) == sorted(TIMELINE_CHOICES)
    assert sorted(ENUMERATED[("interop experiment run", "preset")]) == sorted(PRESETS)
    from db.export import TABLE_FORMATS
    from db.sqldump import DIALECTS

    assert ENUMERATED[("interop export", "fmt")] == list(TABLE_FORMATS)
    assert ENUMERATED[("interop export", "dialect")] == list(DIALECTS)


@pytest.mark.parametrize(("command", "param"), sorted(ENUMERATED))
def test_help_lists_the_choices(command: str, param: str) -> None:
    result = CliRunner().invoke(app, [*command.split()[1:], "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "|".join(ENUMERATED[(command, param)]) in result.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["issues", "list", "--state", "bogus"], ["unknown --state 'bogus': choose one of open, closed"]),
        (["issues", "sample", "--repo", "a/b", "--n", "1", "--seed", "1", "--name", "s", "--state", "x"], ["open"]),
        (["mine", "github", "--repo", "a/b", "--state", "merged"], ["unknown --state 'merged'", "open, closed, all"]),
        (["mine", "github", "--repo", "a/b", "--timelines", "some"], ["unknown --timelines 'some'", "none"]),
        (["export", "--format", "xlsx", "--out", "fresh"], ["unknown --format 'xlsx'", "csv, parquet, sqlite"]),
        (["export", "query", "SELECT 1", "-f", "xlsx", "--out", "fresh"], ["unknown --format 'xlsx'"]),
        (["label", "agreement", "--format", "xml"], ["unknown --format 'xml': choose one of table, json, csv"]),
        (["label", "taxonomy", "--format", "xml"], ["unknown --format 'xml': choose one of table, json, csv"]),
        (["experiment", "run", "--preset", "huge"], ["unknown --preset 'huge': choose one of quick, real"]),
        (["experiment", "analyze", "everything"], ["unknown analysis 'everything'", "outcomes, operators, sequences"]),
        (["experiment", "analyze", "operators", "--level", "ir"], ["unknown --level 'ir': choose one of source, onnx"]),
        (["experiment", "reduce", "forty-two"], ["Invalid value for 'run_id'", "interop experiment reduce --help"]),
        # other command-line mistakes are one line too, pointing at --help
        (["issues", "list", "--nope"], ["No such option: --nope", "interop issues list --help"]),
        (["issues", "sample", "--repo", "a/b"], ["Missing option", "--help"]),
        (["nosuchcommand"], ["No such command 'nosuchcommand'"]),
    ],
)
def test_unknown_values_are_refused_in_one_line_listing_the_choices(
    args: list[str], fragments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run(args, tmp_path, monkeypatch)
    assert code == 2
    assert_one_error_line(output, *fragments)
    assert not (tmp_path / "fresh").exists()


def test_choices_are_case_insensitive_where_they_were_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(["db", "upgrade"], tmp_path, monkeypatch)[0] == 0
    code, output = run(["export", "--format", "CSV", "--tables", "survey", "--out", "out"], tmp_path, monkeypatch)
    assert code == 0, output
    assert (tmp_path / "out" / "survey.csv").exists()


def test_every_help_text_is_its_own_and_shows_no_type_of_a_flag() -> None:
    """Walks every command: --help works, no `<bool>` beside a flag, every command and parameter has help of its
    own (no text copied from another command, no two options of one command with the same help)."""
    problems = []
    seen: dict[str, str] = {}
    for path, cmd in commands():
        name = " ".join(path)
        result = CliRunner().invoke(app, [*path[1:], "--help"], env={"COLUMNS": "200"})
        if result.exit_code != 0 or "<bool>" in result.output:
            problems.append(f"{name}: exit {result.exit_code}, <bool> shown: {'<bool>' in result.output}")
        summary = (cmd.help or "").strip()
        if not summary:
            problems.append(f"{name}: no help")
        elif summary in seen:
            problems.append(f"{name}: the same help as {seen[summary]}")
        seen.setdefault(summary, name)
        helps = [getattr(p, "help", None) for p in cmd.params]
        if any(not h for h in helps) and path[-1] != "interop":
            problems.append(f"{name}: parameter(s) without help: {[p.name for p in cmd.params if not p.help]}")
        repeated = {h for h in helps if h and helps.count(h) > 1}
        if repeated:
            problems.append(f"{name}: options share help {sorted(repeated)}")
    assert not problems, problems
