"""The coding workbench: issues filtered by round, coder, dimension = code and agreement state in SQL (both
backends), their codes per dimension in the list, and one issue's discussion and codes side by side."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from db.queries.issues import IssueFilter, IssueRef, coding_options, issue_coding_columns, issue_detail, issue_list
from tests.support.workbench import NOTE, TRACEBACK, Workbench, seed_workbench


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
    url_only = issue_detail(engine, IssueRef.parse("acme/conv#45"))
    assert url_only is not None and url_only.discussion.empty
    assert url_only.codes["final"].tolist() == ["symptom 2 (2)", "cause 2 (2)"]
    assert "alice" not in url_only.codes.columns  # no coder coded it: no empty coder columns
