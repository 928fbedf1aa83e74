"""The one CLI contract: every read command writes table, json or csv to stdout or --out; errors are one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cli.main import app
from db.errors import InteropError
from tests.support.seed import REPOS, seed_experiments, seed_github

#: A survey name longer than any terminal line: a pipe must still show it whole.
LONG_SURVEY = "onnx-interoperability-survey-with-a-name-longer-than-a-terminal-line-" + "x" * 20

# --- the error handler ----------------------------------------------------------------------------------------


def _broken_list(error: BaseException):  # type: ignore[no-untyped-def]
    def list_surveys(engine: Engine) -> None:
        raise error

    return list_surveys


def test_an_interop_error_is_one_line_with_its_exit_code(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import db.queries.survey

    monkeypatch.setattr(db.queries.survey, "list_surveys", _broken_list(InteropError("no such thing", exit_code=7)))
    result = cli("survey", "list")
    assert result.exit_code == 7
    assert [line for line in result.output.splitlines() if line.strip()] == ["error: no such thing"]
    monkeypatch.setattr(
        db.queries.survey, "list_surveys", _broken_list(InteropError("stopped", hint="steps 1–2 stay done"))
    )
    hinted = cli("survey", "list")
    assert hinted.exit_code == 2 and hinted.output.splitlines() == ["error: stopped", "steps 1–2 stay done"]


def test_any_other_exception_is_a_bug_exit_1_and_a_traceback_only_in_debug_mode(  # type: ignore[no-untyped-def]
    configured_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.queries.survey

    monkeypatch.setattr(db.queries.survey, "list_surveys", _broken_list(ZeroDivisionError("division by zero")))
    monkeypatch.delenv("INTEROP_DEBUG", raising=False)
    result = CliRunner().invoke(app, ["survey", "list"], catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: internal error (ZeroDivisionError: division by zero)")
    assert "INTEROP_DEBUG=1" in lines[0]
    monkeypatch.setenv("INTEROP_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        CliRunner().invoke(app, ["survey", "list"], catch_exceptions=False)


def test_every_project_error_is_an_interop_error() -> None:
    import importlib
    import inspect
    import pkgutil

    import db
    import experiments
    import labeling
    import miners
    import reporting

    outside = []
    for package in (db, miners, labeling, experiments, reporting):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" in info.name or info.name.startswith(("experiments.sources", "experiments.converters")):
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                mine = inspect.isclass(obj) and obj.__module__ == module.__name__ and name.endswith("Error")
                if mine and not issubclass(obj, InteropError):
                    outside.append(f"{module.__name__}.{name}")
    assert not outside, outside


# --- formats --------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(cli, engine: Engine, shared_dir: Path) -> Engine:  # type: ignore[no-untyped-def]
    """A little of everything the read commands show."""
    seed_github(engine, 3)
    seed_experiments(engine)
    survey = shared_dir / "data/paper-artifact/survey/interopSurvey.xlsx"
    study = shared_dir / "data/paper-artifact/failure-analysis"
    for args in (
        ("survey", "import", str(survey), "--survey", LONG_SURVEY),
        ("label", "codebook", "load", str(shared_dir / "codebook/onnx-converter-failures.yaml")),
        ("label", "import-sheet", str(study / "FailureAnalysis.xlsx")),
        ("label", "import-sheet", str(study / "PilotStudy.xlsx")),
    ):
        assert cli(*args).exit_code == 0, args
    return engine


READ_COMMANDS = {
    "issues list": ["issues", "list"],
    "issues show": ["issues", "show", f"{REPOS[0]}#1001"],
    "survey list": ["survey", "list"],
    "survey counts": ["survey", "counts", LONG_SURVEY, "Q1"],
    "label rounds": ["label", "rounds"],
    "label agreement": ["label", "agreement", "--round", "pilotstudy", "--bootstrap", "20"],
    "label taxonomy": ["label", "taxonomy", "--round", "failureanalysis", "--crosstab", "symptom"],
    "label finals": ["label", "finals", "--round", "failureanalysis"],
    "experiment status": ["experiment", "status", "--campaign", "seeded"],
    "experiment analyze": ["experiment", "analyze", "outcomes", "--campaign", "seeded"],
    "export query": ["export", "query", "SELECT 1 AS one, 'two' AS two"],
}


@pytest.mark.slow
def test_every_read_command_writes_table_json_and_csv(  # type: ignore[no-untyped-def]
    cli, seeded: Engine, configured_reader: str, tmp_path: Path
) -> None:
    for name, args in READ_COMMANDS.items():
        shown = {}
        for fmt in ("table", "json", "csv"):
            result = cli(*args, "--format", fmt)
            assert result.exit_code == 0, (name, fmt, result.output)
            shown[fmt] = result.stdout
        document = json.loads(shown["json"])
        assert isinstance(document, list | dict) and document, name
        header = next(csv.reader(io.StringIO(shown["csv"])))
        assert len(header) >= 2 and all(header), (name, header)
        rows = document if isinstance(document, list) else None
        if rows:
            assert list(rows[0]) == header, name  # one row object per CSV row, keyed by the header
        # --out writes the same document to a file, nothing to stdout
        out = tmp_path / f"{name.replace(' ', '-')}.json"
        written = cli(*args, "--format", "json", "--out", str(out))
        assert written.exit_code == 0, (name, written.output)
        assert json.loads(out.read_text()) == document, name
        assert not list(tmp_path.glob("*.partial"))
    # a pipe keeps every identifier whole: no ellipsis, no wrapping
    listed = cli("survey", "list").stdout
    assert LONG_SURVEY in listed and "…" not in listed
    counts = json.loads(cli("survey", "counts", LONG_SURVEY, "Q1", "--format", "json").stdout)
    assert {"choice", "count", "n_answered", "n_respondents"} <= set(counts[0])
    status = json.loads(cli("experiment", "status", "--campaign", "seeded", "--format", "json").stdout)
    assert set(status) == {"campaigns", "runs", "opset_changes"} and status["campaigns"][0]["campaign"] == "seeded"


def test_a_campaign_is_named_with_the_campaign_option(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    seed_experiments(engine)
    for args in (["experiment", "status"], ["experiment", "analyze", "outcomes"]):
        assert cli(*args, "--campaign", "seeded").exit_code == 0
        unknown = cli(*args, "--campaign", "nope")
        assert unknown.exit_code == 2 and "no campaign named 'nope'" in unknown.output
    positional = cli("experiment", "status", "seeded")
    assert positional.exit_code == 2 and "error:" in positional.output


def test_list_options_take_repeats_and_comma_lists_alike() -> None:
    from cli.output import split_list

    assert split_list(["a", "b,c", " d , "]) == ["a", "b", "c", "d"]
    assert split_list("x,y") == ["x", "y"] and split_list(None) == []


def test_list_options_of_experiment_run_accept_both_forms(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args in (["--opsets", "14,17"], ["--opsets", "14", "--opsets", "17"]):
        bad = cli("experiment", "run", "--sources", "nnsmith-torch", "--sources", "nosuch", *args)
        assert bad.exit_code == 2 and "unknown source 'nosuch'" in bad.output, bad.output
    not_ints = cli("experiment", "run", "--sources", "nnsmith-torch", "--opsets", "14,x")
    assert not_ints.exit_code == 2 and "expected integers" in not_ints.output
