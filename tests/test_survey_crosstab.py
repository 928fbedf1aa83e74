"""Subgroups: `interop survey crosstab S Q --by G` on the study's export, its denominators and its choice of test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sqlalchemy.engine import Engine

from db.queries.survey import CrosstabTest, SurveyFilter, _independence, crosstab_test, question_text, survey_crosstab
from tests.test_report_paper import survey_rows

MULTI = "Q65"  # problems with ONNX models (multi-select)
GROUP = "Q61"  # uses ONNX (single choice)


#: a Qualtrics export artifact inside multi-select cells, not a choice (the import ignores it)
ARTIFACT = "AnswerDisplayOrder"


def _answered(cell: str) -> bool:
    """Whether a multi-select cell holds a real choice once the export artifact is taken out."""
    return bool(cell.replace(ARTIFACT, "").strip(", "))


@pytest.fixture
def study_survey(cli, shared_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    export = shared_dir / "data/paper-artifact/survey/interopSurvey.xlsx"
    assert cli("survey", "import", str(export), "--survey", "interop").exit_code == 0
    return export


def test_crosstab_gives_counts_with_row_and_column_denominators(
    cli, engine: Engine, shared_dir: Path, study_survey
) -> None:  # type: ignore[no-untyped-def]
    table = survey_crosstab(engine, SurveyFilter("interop", GROUP), "Q5")  # two single-choice questions
    _, people = survey_rows(shared_dir)
    both = [p for p in people if p[GROUP] and p["Q5"]]
    assert table.attrs["n_both"] == len(both) and set(table["n_both"]) == {len(both)}
    for row in table.itertuples():
        in_row = [p for p in both if p[GROUP] == row.choice]
        in_column = [p for p in both if p["Q5"] == row.by_choice]
        count = sum(1 for p in in_row if p["Q5"] == row.by_choice)
        assert (row.count, row.row_n, row.column_n) == (count, len(in_row), len(in_column))
        assert row.pct_of_row == pytest.approx(round(100 * count / len(in_row), 1))
        assert row.pct_of_column == pytest.approx(round(100 * count / len(in_column), 1))
    # the percentages of a row over the groups add up to 100 for a single-choice pair
    assert table.groupby("choice")["pct_of_row"].sum().round(0).eq(100).all()

    csv_out = cli("survey", "crosstab", "interop", GROUP, "--by", "Q5", "--format", "csv")
    assert csv_out.exit_code == 0, csv_out.output
    header = next(csv.reader(csv_out.stdout.splitlines()))
    assert {"count", "row_n", "pct_of_row", "column_n", "pct_of_column", "n_both", "pct_of_both"} <= set(header)
    rows = json.loads(cli("survey", "crosstab", "interop", GROUP, "--by", "Q5", "--format", "json").stdout)
    assert sum(r["count"] for r in rows) == len(both)


def test_a_multi_select_question_by_groups_counts_each_respondent_once_per_row(
    engine: Engine, shared_dir: Path, study_survey
) -> None:  # type: ignore[no-untyped-def]
    table = survey_crosstab(engine, SurveyFilter("interop", MULTI), GROUP)
    _, people = survey_rows(shared_dir)
    both = [p for p in people if _answered(p[MULTI]) and p[GROUP]]
    assert table.attrs["n_both"] == len(both)
    groups = {g: sum(1 for p in both if p[GROUP] == g) for g in {p[GROUP] for p in both}}
    assert dict(zip(table["by_choice"], table["column_n"], strict=True)) == groups
    known = set(table["choice"])
    for row in table.itertuples():
        # a choice's text may itself contain commas: count respondents whose cell contains it
        picked = [p for p in both if row.choice in p[MULTI]]
        assert row.row_n == len(picked), row.choice
        assert row.count == sum(1 for p in picked if p[GROUP] == row.by_choice)
    assert len(known) >= 3


def test_the_test_fits_the_table(cli, engine: Engine, study_survey) -> None:  # type: ignore[no-untyped-def]
    # multi-select rows by a single-choice group: no test of the whole table, each choice on its own (2×2)
    multi = crosstab_test(survey_crosstab(engine, SurveyFilter("interop", MULTI), GROUP))
    assert multi.test == "none" and "multi-select" in multi.reason and multi.per_choice
    tests = dict(multi.per_choice)
    other = tests["Other (please specify)"]  # 6 respondents: an expected count below 5 → Fisher's exact
    assert other.test == "fisher-exact" and other.min_expected is not None and other.min_expected < 5
    assert all(t.test in ("chi-square", "fisher-exact") for t in tests.values())
    # each choice's p-value is also adjusted for all the choices tested (Holm's step-down, computed here by hand)
    raw = sorted((t.p_value, c) for c, t in tests.items() if t.p_value is not None)
    m, running = len(raw), 0.0
    for rank, (p, choice) in enumerate(raw):
        running = max(running, min(1.0, (m - rank) * p))
        assert tests[choice].p_holm == pytest.approx(running) and tests[choice].n_tests == m
        assert tests[choice].p_holm >= tests[choice].p_value
    assert "Holm" in multi.reason and "Holm-adjusted p" in other.summary()
    # a multi-select group question: the groups overlap, no test
    assert crosstab_test(survey_crosstab(engine, SurveyFilter("interop", GROUP), MULTI)).test == "none"
    # Q1 (4 choices) × Q61 (2): 25% of the cells expect fewer than 5 → chi-square is said to be invalid
    q1 = crosstab_test(survey_crosstab(engine, SurveyFilter("interop", "Q1"), GROUP))
    assert q1.test == "none" and "not valid" in q1.reason and q1.small_expected_share == pytest.approx(0.25)
    shown = cli("survey", "crosstab", "interop", MULTI, "--by", GROUP)
    assert shown.exit_code == 0, shown.output
    assert "row n" in shown.stdout and "column n" in shown.stdout and "Fisher's exact test" in shown.stdout
    assert "Holm-adjusted p" in shown.stdout
    missing = cli("survey", "crosstab", "interop", MULTI)
    assert missing.exit_code == 2 and missing.output.strip().startswith("error:") and "--by" in missing.output


def test_independence_picks_chi_square_fisher_or_none_on_built_tables() -> None:
    large = np.array([[30.0, 10.0], [12.0, 28.0]])
    chi = _independence(large)
    expected = stats.chi2_contingency(large, correction=True)
    assert chi.test == "chi-square" and chi.p_value == pytest.approx(expected.pvalue) and chi.dof == 1
    small = np.array([[3.0, 1.0], [1.0, 3.0]])
    fisher = _independence(small)
    assert fisher.test == "fisher-exact" and fisher.p_value == pytest.approx(stats.fisher_exact(small)[1])
    sparse = np.array([[20.0, 1.0, 0.0], [18.0, 2.0, 3.0], [25.0, 0.0, 1.0]])
    assert _independence(sparse).test == "none" and "not valid" in _independence(sparse).reason
    assert _independence(np.array([[5.0, 6.0]])).test == "none"
    assert isinstance(chi, CrosstabTest) and "χ²" in chi.summary() and "Fisher" in fisher.summary()


def test_question_text_drops_only_the_qualtrics_suffix() -> None:
    long = "Which framework do you use for model development? (check all that apply) - Selected Choice"
    assert question_text(long) == "Which framework do you use for model development? (check all that apply)"
    kept = "A question that mentions - Selected Choice in the middle, and goes on"
    assert question_text(kept) == kept
    assert question_text(None) == ""
