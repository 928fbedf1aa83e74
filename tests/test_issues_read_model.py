"""The one issues read model (db.queries.issues): its filter in SQL, and the CLI and the app giving the same rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import Issue, IssueSample, IssueSampleMember, Repository
from db.queries.issues import (
    IssueFilter,
    IssueRef,
    filter_options,
    issue_detail,
    issue_list,
    issue_summary,
    issues_over_time,
)
from tests.support.apptest import metrics, open_page
from tests.support.seed import Seeded, seed_github

T0 = datetime(2024, 1, 1, tzinfo=UTC)
#: number → labels of the small repository `acme/conv` (issue n opened n days after T0)
LABELS = {1: ["a"], 2: ["b"], 3: ["a", "b"], 4: [], 5: ["a", "c"]}


@pytest.fixture
def acme(engine: Engine) -> Engine:
    """acme/conv: five mined issues with label sets, one known only by URL, a sample drawn as 5, 1, 3."""
    with Session(engine) as s:
        repo = Repository(full_name="acme/conv", first_seen_at=T0)
        s.add(repo)
        s.flush()
        ids = {}
        for n, labels in LABELS.items():
            issue = Issue(
                repository_id=repo.id or 0,
                number=n,
                title=f"export {n} fails" + (" at 100%" if n == 2 else ""),
                body="Conversion error in ONNX" if n % 2 else "works_for_me",
                state="closed" if n <= 3 else "open",
                labels=labels,
                created_at=T0 + timedelta(days=n),
                closed_at=T0 + timedelta(days=n + 1) if n <= 3 else None,
                hydrated=True,
            )
            s.add(issue)
            s.flush()
            ids[n] = issue.id
        s.add(Issue(repository_id=repo.id or 0, number=99, html_url="https://github.com/acme/conv/issues/99"))
        sample = IssueSample(name="s", seed=1, rule={})
        s.add(sample)
        s.flush()
        for position, n in enumerate((5, 1, 3)):
            s.add(IssueSampleMember(sample_id=sample.id or 0, issue_id=ids[n] or 0, position=position))
        s.commit()
    return engine


def numbers(engine: Engine, **fields) -> list[int]:  # type: ignore[no-untyped-def]
    return issue_list(engine, IssueFilter(**fields), limit=None)["number"].tolist()


def test_labels_match_any_or_all_in_sql(acme: Engine) -> None:
    assert sorted(numbers(acme, labels=("a", "b"))) == [1, 2, 3, 5]
    assert numbers(acme, labels=("a", "b"), label_mode="all") == [3]
    assert numbers(acme, labels=["a", "c"], label_mode="all") == [5]  # a list is taken as a tuple
    assert numbers(acme, labels=("a", "a"), label_mode="all") == [5, 3, 1]  # repeats count once
    assert numbers(acme, labels=("nope",)) == []
    with pytest.raises(ValueError, match="label_mode"):
        IssueFilter(label_mode="some")  # type: ignore[arg-type]


def test_dates_text_state_sample_and_order(acme: Engine) -> None:
    assert numbers(acme) == [5, 4, 3, 2, 1]  # newest first; the issue known only by URL is not listed
    assert numbers(acme, since=date(2024, 1, 3), until="2024-01-04") == [3, 2]  # issue n opened on day n + 1
    assert numbers(acme, text="ONNX") == [5, 3, 1]  # body, case-insensitive
    assert numbers(acme, text="100%") == [2]  # % and _ are literal
    assert numbers(acme, text="works_for") == [4, 2]
    assert numbers(acme, state="open") == [5, 4]
    assert numbers(acme, sample="s") == [5, 1, 3]  # the sample's drawn order
    assert numbers(acme, mined=False) == [99]
    assert sorted(numbers(acme, mined=None)) == [1, 2, 3, 4, 5, 99]
    page = issue_list(acme, IssueFilter(), limit=2, offset=2)
    assert page["number"].tolist() == [3, 2] and page["labels"].iloc[0] == ["a", "b"]
    assert str(page["fix_linked"].dtype) == "boolean" and page["fix_linked"].isna().all()  # never evaluated


def test_summary_over_time_detail_and_options(acme: Engine) -> None:
    summary = issue_summary(acme, IssueFilter(labels=("a",)))
    assert summary.to_dict("records") == [
        {"repository": "acme/conv", "issues": 3, "closed": 2, "with_commit_event": 0, "fix_linked": 0}
    ]
    assert issue_summary(acme, IssueFilter(mined=False))["issues"].tolist() == [1]
    assert issue_summary(acme, IssueFilter(repositories=("other/repo",))).empty
    over = issues_over_time(acme, IssueFilter(state="closed"))
    assert over.groupby("what")["issues"].sum().to_dict() == {"closed": 3, "opened": 3}
    assert set(over["month"].dt.strftime("%Y-%m")) == {"2024-01"}
    detail = issue_detail(acme, IssueRef.parse("acme/conv#3"))
    assert detail is not None and detail.samples == ["s"] and detail.issue["labels"] == ["a", "b"]
    assert detail.timeline.empty and list(detail.timeline.columns)[:2] == ["event_key", "event"]
    assert issue_detail(acme, IssueRef("acme/conv", 7)) is None
    options = filter_options(acme)
    assert options["labels"] == ["a", "b", "c"] and options["samples"] == ["s"] and options["rule_versions"] == []
    for bad in ("acme/conv", "conv#3", "acme/conv#x"):
        with pytest.raises(ValueError, match="owner/name#number"):
            IssueRef.parse(bad)


def test_a_filter_survives_the_apps_cache_key(acme: Engine) -> None:
    """The app passes the filter through its JSON cache key; it must come back equal."""
    import json

    from explorer.common import _decode, _encode

    f = IssueFilter(repositories=("acme/conv",), labels=("a", "b"), label_mode="all", since=date(2024, 1, 2))
    assert json.loads(json.dumps({"f": f}, default=_encode), object_hook=_decode)["f"] == f
    assert replace(f, mined=False).mined is False


# --- the CLI and the app show the same issues -------------------------------------------------------------


@pytest.fixture
def seeded(configured_db: str, engine: Engine) -> Iterator[Seeded]:
    st.cache_data.clear()
    yield seed_github(engine)
    st.cache_data.clear()


def cli_rows(result) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """(repository, number) of each row of `issues list`'s table, in order."""
    assert result.exit_code == 0, result.output
    return [(m[1], int(m[2])) for m in re.finditer(r"^\W*([\w.-]+/[\w.-]+)\W+(\d+)\W", result.output, re.M)]


def app_rows(**params: str | list[str]) -> list[tuple[str, int]]:
    at = open_page("issues", **params)  # type: ignore[arg-type]
    frame = next(d.value for d in at.dataframe if "title" in d.value.columns)
    rows = [(str(r), int(n)) for r, n in zip(frame["repository"], frame["number"], strict=True)]
    assert metrics(at)["Matching issues"] == str(len(rows))
    return rows


@pytest.mark.parametrize(
    ("cli_args", "url"),
    [
        (
            ["--repo", "onnx/tensorflow-onnx", "--label", "bug", "--label", "question", "--state", "closed"],
            {"repo": "onnx/tensorflow-onnx", "label": ["bug", "question"], "state": "closed"},
        ),
        (
            ["--label", "bug", "--label", "question", "--label-mode", "all"],
            {"label": ["bug", "question"], "match": "all"},
        ),
        (
            ["--since", "2023-02-01", "--until", "2023-03-31", "--text", "EXPORT FAILS #1"],
            {"since": "2023-02-01", "until": "2023-03-31", "q": "EXPORT FAILS #1"},
        ),
        (["--sample", "pilot"], {"sample": "pilot"}),
    ],
    ids=["labels-any", "labels-all", "dates-text", "sample"],
)
def test_the_cli_and_the_app_list_the_same_issues(
    seeded: Seeded,
    engine: Engine,
    cli,  # type: ignore[no-untyped-def]
    wide_console: None,
    cli_args: list[str],
    url: dict[str, str | list[str]],
) -> None:
    shown = cli_rows(cli("issues", "list", "--limit", "50", *cli_args))
    assert shown == app_rows(**url)
    if "match" in url:
        assert shown == []  # no seeded issue has both labels
    else:
        assert shown, "the case should select some issues"
