"""The coding workbench: issues filtered by round, coder, dimension = code and agreement state in SQL (both
backends), their codes per dimension in the list, and one issue's discussion and codes side by side."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy.engine import Engine

from db.queries.issues import IssueFilter, IssueRef, coding_options, issue_coding_columns, issue_detail, issue_list
from tests.support.apptest import metrics, open_page, texts
from tests.support.workbench import MODEL, NOTE, TRACEBACK, Workbench, seed_workbench

URL_ONLY_TITLE = "(known only by URL: not mined yet)"


@pytest.fixture
def bench(engine: Engine) -> Workbench:
    return seed_workbench(engine)


def numbers(engine: Engine, **fields) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(issue_list(engine, IssueFilter(mined=None, **fields), limit=None)["number"].tolist())


def test_filters_by_dimension_code_in_sql(bench: Workbench, engine: Engine) -> None:
    # the final code stands where there is one: #42's coders said cause 1 and 2, the final is cause 2
    assert numbers(engine, codes=["cause=cause 2"]) == [42, 45]
    assert numbers(engine, codes=["cause=2"]) == [42, 45]  # a code number works as well as a label
    assert numbers(engine, codes=["cause=CAUSE 1"]) == [43, 44]  # no final: any coder's code; case-insensitive
    assert numbers(engine, codes=[("symptom", "symptom 2")]) == [43, 44, 45]  # bob's code of #43
    assert numbers(engine, codes=["symptom=symptom 2", "cause=cause 1"]) == [43, 44]  # pairs must all hold
    assert numbers(engine, codes=["component=1"]) == []  # a dimension no round has
    assert numbers(engine, codes=["cause=cause 2"], rounds=["nope"]) == []
    with pytest.raises(ValueError, match="dimension=code"):
        IssueFilter(codes=["symptom"])


def test_filters_by_round_coder_and_agreement_in_sql(bench: Workbench, engine: Engine) -> None:
    for state in ("agreed", "disagreed", "adjudicated", "uncoded"):
        expected = sorted(n for n, s in bench.states.items() if s == state)
        assert numbers(engine, agreement=state) == expected, state
    assert numbers(engine, rounds=["r1"]) == [42, 43, 44, 45]
    assert numbers(engine, rounds=["r1"], agreement="uncoded") == []
    assert numbers(engine, coders=["bob"]) == [42, 43]
    assert numbers(engine, coders=["alice"], agreement="agreed") == [44]
    assert numbers(engine, coders=["alice"], rounds=["r1"], codes=["symptom=1"]) == [42, 43]
    assert sorted(issue_list(engine, IssueFilter(rounds=["r1"]), limit=None)["number"]) == [42, 43, 44]  # mined only
    with pytest.raises(ValueError, match="agreement must be one of"):
        IssueFilter(agreement="maybe")


def test_list_columns_per_dimension_and_options(bench: Workbench, engine: Engine) -> None:
    refs = [f"acme/conv#{n}" for n in (42, 43, 44, 45, 46)]
    frame = issue_coding_columns(engine, IssueFilter(), refs).set_index("number")
    assert list(frame.columns) == ["repository", "agreement", "symptom", "cause"]
    assert frame["agreement"].to_dict() == bench.states
    assert frame.loc[42, "cause"] == "cause 2"  # the final code, not the coders' two
    assert frame.loc[43, "symptom"] == "symptom 1 | symptom 2" and frame.loc[43, "cause"] == "cause 1"
    assert frame.loc[45, "symptom"] == "symptom 2"
    assert frame.loc[46, ["symptom", "cause"]].isna().all()
    assert issue_coding_columns(engine, IssueFilter(), []).empty
    options = coding_options(engine)
    assert options["rounds"] == ["r1"] and options["coders"] == ["alice", "bob"]
    assert options["dimensions"] == ["symptom", "cause"]
    assert options["codes"] == {"symptom": ["symptom 1", "symptom 2"], "cause": ["cause 1", "cause 2"]}


def test_detail_has_discussion_codes_side_by_side_history_and_tasks(bench: Workbench, engine: Engine) -> None:
    detail = issue_detail(engine, IssueRef.parse("acme/conv#42"))
    assert detail is not None
    assert detail.discussion["author"].tolist() == ["dave", "erin"]
    assert TRACEBACK in detail.discussion["body"].iloc[0]
    codes = detail.codes.set_index("dimension")
    assert list(codes.columns) == ["round", "alice", "bob", "agree", "final", "decided_by", "note"]
    assert codes.loc["cause", ["alice", "bob", "final"]].tolist() == ["cause 1 (1)", "cause 2 (2)", "cause 2 (2)"]
    assert codes.loc[["symptom", "cause"], "agree"].tolist() == [True, False]
    assert codes.loc["cause", "decided_by"] == "review:carol" and codes.loc["cause", "note"] == NOTE
    assert detail.history["action"].tolist() == ["new", "changed"]
    assert detail.history["previous_decided_by"].tolist()[1] == "rule:prefer-coder=alice"
    assert detail.ls_tasks[["ls_project_id", "ls_task_id"]].values.tolist() == [[bench.ls_project_id, bench.ls_task_id]]
    suggested = detail.suggestions.set_index("dimension")
    assert suggested.loc[["symptom", "cause"], "suggested"].tolist() == ["symptom 1 (1)", "cause 1 (1)"]
    assert suggested.loc[["symptom", "cause"], "matches_final"].tolist() == [True, False]
    assert set(suggested["model_version"]) == {MODEL} and suggested.loc["cause", "score"] == pytest.approx(0.55)
    assert "model" not in set(detail.codings["coder"]) and MODEL not in detail.codes.columns  # never a coder
    url_only = issue_detail(engine, IssueRef.parse("acme/conv#45"))
    assert url_only is not None and url_only.discussion.empty and url_only.suggestions.empty
    assert url_only.codes["final"].tolist() == ["symptom 2 (2)", "cause 2 (2)"]
    assert "alice" not in url_only.codes.columns  # no coder coded it: no empty coder columns


# --- the Issues page (AppTest) ---------------------------------------------------------------------------------


@pytest.fixture
def bench_app(configured_db: str, engine: Engine) -> Iterator[Workbench]:
    st.cache_data.clear()
    yield seed_workbench(engine)
    st.cache_data.clear()


def listed(at) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return next(d.value for d in at.dataframe if "title" in d.value.columns).set_index("number")


def test_issues_page_lists_codes_per_dimension_and_url_only_issues(bench_app: Workbench) -> None:
    at = open_page("issues")
    rows = listed(at)
    assert sorted(rows.index) == [42, 43, 44, 45, 46] and metrics(at)["Matching issues"] == "5"
    assert list(rows.columns[:5]) == ["repository", "title", "state", "agreement", "symptom"]
    assert rows["agreement"].to_dict() == bench_app.states
    assert rows.loc[43, "symptom"] == "symptom 1 | symptom 2" and rows.loc[42, "cause"] == "cause 2"
    assert rows.loc[45, "title"] == URL_ONLY_TITLE and rows.loc[45, "state"] == "—"
    assert rows.loc[46, "symptom"] == "—"
    assert not rows.astype(str).isin(["None", "nan", "NaT", "<NA>"]).any().any()
    assert metrics(at)["Closed"] == "1 of 4"  # #45's state is unknown, not open
    body = texts(at)
    assert "1 matching issue(s) are known only by URL" in body and "Not in this chart: 1 issue(s)" in body


def test_issues_page_charts_say_what_is_missing(bench_app: Workbench) -> None:
    at = open_page("issues", mined="url-only")
    assert sorted(listed(at).index) == [45]
    assert not at.get("vega_lite_chart")
    body = texts(at)
    assert "No chart of issues opened and closed per month: none of the 1 matching issue(s)" in body
    assert "No chart of coded failures over time" in body and metrics(at)["Closed"] == "unknown"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"code": "cause=cause 2"}, [42, 45]),
        ({"code": ["symptom=symptom 2", "cause=cause 1"]}, [43, 44]),
        ({"agreement": "disagreed"}, [43]),
        ({"agreement": "uncoded"}, [46]),
        ({"coder": "bob"}, [42, 43]),
        ({"round": "r1", "mined": "mined"}, [42, 43, 44]),
    ],
    ids=["code", "two-codes", "disagreed", "uncoded", "coder", "round-mined"],
)
def test_issues_page_filters_by_coding(bench_app: Workbench, params: dict, expected: list[int]) -> None:  # type: ignore[type-arg]
    at = open_page("issues", **params)
    assert sorted(listed(at).index) == expected
    assert metrics(at)["Matching issues"] == str(len(expected))


def test_issues_page_code_filter_widget(bench_app: Workbench) -> None:
    at = open_page("issues")
    at.multiselect(key="param_code").select("symptom=symptom 2").run()
    assert sorted(listed(at).index) == [43, 44, 45]
    at.selectbox(key="param_agreement").select("agreed").run()
    assert sorted(listed(at).index) == [44, 45]
    assert at.query_params["agreement"] in ("agreed", ["agreed"])


def test_issue_detail_shows_codes_side_by_side_history_discussion_and_task(bench_app: Workbench) -> None:
    at = open_page("issues", issue="acme/conv#42")
    codes = next(d.value for d in at.dataframe if "alice" in d.value.columns).set_index("dimension")
    assert codes.loc["cause", ["alice", "bob", "agree", "final"]].tolist() == [
        "cause 1 (1)",
        "cause 2 (2)",
        "no",
        "cause 2 (2)",
    ]
    assert codes.loc["cause", "decided_by"] == "review:carol" and codes.loc["cause", "note"] == NOTE
    assert codes.loc["symptom", "note"] == "—"
    history = next(d.value for d in at.dataframe if "action" in d.value.columns)
    assert history["action"].tolist() == ["new", "changed"] and history["note"].tolist() == ["—", NOTE]
    body = texts(at)
    assert "Discussion (2 comments)" in body
    assert body.index("**dave**") < body.index("**erin**")  # in order
    assert "```text\nTraceback (most recent call last):" in body  # the bare traceback gets a code block
    assert "```python\ntorch.onnx.export" in body  # the body's fenced code stays
    assert f"/projects/{bench_app.ls_project_id}/data?task={bench_app.ls_task_id}" in body
    assert "**Round `r1`** · coders: alice, bob" in body
    suggested = next(d.value for d in at.dataframe if "suggested" in d.value.columns).set_index("dimension")
    assert suggested.loc["cause", ["suggested", "final", "matches_final"]].tolist() == [
        "cause 1 (1)",
        "cause 2 (2)",
        "no",
    ]
    assert "**Model suggestions**" in body

    at = open_page("issues", issue="acme/conv#45")  # known only by URL: the sheet's final codes, no "None"
    body = texts(at)
    assert "known only by its URL" in body and "None" not in body
    finals = next(d.value for d in at.dataframe if "final" in d.value.columns)
    assert finals["final"].tolist() == ["symptom 2 (2)", "cause 2 (2)"] and "agree" not in finals


# --- interop issues show ----------------------------------------------------------------------------------------


def test_issues_show_prints_codes_history_discussion_and_task(
    bench: Workbench,
    cli,  # type: ignore[no-untyped-def]
    wide_console: None,
) -> None:
    shown = cli("issues", "show", "acme/conv#42")
    assert shown.exit_code == 0, shown.output
    out = shown.output
    lines = [line for line in out.splitlines() if "cause" in line and "│" in line]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines]
    assert ["cause", "cause 1 (1)", "cause 2 (2)", "no", "cause 2 (2)", "review:carol", NOTE] in cells
    assert "codes in round r1" in out and "adjudication history" in out and "rule:prefer-coder=alice" in out
    assert "discussion (2 comments):" in out and out.index("dave") < out.index("erin")
    assert '      File "export.py", line 3, in <module>' in out  # the traceback as written, indented
    assert f"projects/{bench.ls_project_id}/data?task={bench.ls_task_id}" in out
    assert "model suggestions" in out
    suggested = [c for c in cells if c[1:3] == [MODEL, "cause"]]
    assert suggested == [["r1", MODEL, "cause", "cause 1 (1)", "0.55", "cause 2 (2)", "no"]]
    url_only = cli("issues", "show", "acme/conv#45")
    assert url_only.exit_code == 0 and "known only by its URL" in url_only.output
    assert "symptom 2 (2)" in url_only.output and "None" not in url_only.output


def test_issues_show_json_has_all_of_it(bench: Workbench, cli) -> None:  # type: ignore[no-untyped-def]
    shown = cli("issues", "show", "acme/conv#42", "--format", "json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert {"issue", "timeline", "verdicts", "discussion", "codes", "codings", "finals"} <= set(doc)
    assert [c["author"] for c in doc["discussion"]] == ["dave", "erin"]
    assert {(c["coder"], c["dimension"], c["code"]) for c in doc["codings"]} == {
        ("alice", "symptom", 1),
        ("bob", "symptom", 1),
        ("alice", "cause", 1),
        ("bob", "cause", 2),
    }
    cause = next(f for f in doc["finals"] if f["dimension"] == "cause")
    assert (cause["code"], cause["decided_by"], cause["note"]) == (2, "review:carol", NOTE)
    assert [h["action"] for h in doc["adjudication_history"]] == ["new", "changed"]
    assert doc["codes"][1]["alice"] == "cause 1 (1)" and doc["codes"][1]["agree"] is False
    task = doc["label_studio_tasks"][0]
    assert task["url"].endswith(f"/projects/{bench.ls_project_id}/data?task={bench.ls_task_id}")
    assert doc["issue"]["title"] == "export of a LSTM fails"
    assert [(x["dimension"], x["suggested"], x["matches_final"]) for x in doc["suggestions"]] == [
        ("symptom", "symptom 1 (1)", True),
        ("cause", "cause 1 (1)", False),
    ]
