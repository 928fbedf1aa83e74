"""The GraphQL issue miner end to end: PyGithub's requester against the local GitHub-like server's GraphQL
side, into both databases; the same fake repository mined over REST gives the same rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import (
    GithubCommentCursor,
    GithubCursor,
    IngestRun,
    Issue,
    IssueComment,
    IssueEvent,
    IssueFixLink,
    Repository,
)
from tests.support.github_server import FakeGitHub, Fault
from tests.support.processes import as_if_typed

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghp_GraphQLTestToken0123456789abcdef"
OTHER = "ghp_GraphQLOtherToken0123456789abcd"
REPO = "pytorch/pytorch"
N = 240  # items 1..N: every 7th a PR (GraphQL never lists PRs), every 5th open -> 3 pages of issues


@pytest.fixture
def gh(shared_dir: Path) -> Iterator[FakeGitHub]:
    server = FakeGitHub(shared_dir, tokens=(TOKEN, OTHER))
    server.add_repo(REPO)
    server.populate(REPO, N, pr_every=7, open_every=5, labels=("module: onnx",))
    with server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub) -> FakeGitHub:
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("INTEROP_GITHUB_BASE_URL", gh.url)
    monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
    monkeypatch.delenv("INTEROP_GITHUB_API", raising=False)  # the default with a token: graphql
    return gh


def mine(cli, *args: str):  # type: ignore[no-untyped-def]
    return cli("mine", "github", "--repo", REPO, *args)


def expected() -> list[int]:
    return [n for n in range(1, N + 1) if n % 7]


def count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def last_run(engine: Engine) -> IngestRun:
    with Session(engine) as s:
        return s.execute(select(IngestRun).order_by(IngestRun.id.desc())).scalars().first()  # type: ignore[union-attr]


def pages(gh: FakeGitHub, operation: str = "IssuePage") -> list[dict[str, str]]:
    return [r.query for r in gh.requests("graphql") if r.query.get("operation") == operation]


# -- sync, pagination, since ------------------------------------------------------------------------


def test_graphql_is_the_default_with_a_token_and_costs_a_request_per_page(env: FakeGitHub, cli, engine: Engine) -> None:
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert "(graphql)" in result.output
    with Session(engine) as s:
        numbers = sorted(s.execute(select(Issue.number)).scalars())
        issue = s.execute(select(Issue).where(Issue.number == 8)).scalar_one()
        repo = s.execute(select(Repository)).scalar_one()
    assert numbers == expected()
    assert issue.raw and issue.raw["number"] == 8 and issue.raw["graphql"]["number"] == 8
    assert issue.labels == ["module: onnx"] and issue.state == "closed" and issue.state_reason == "completed"
    assert repo.full_name == REPO and repo.github_id == env.repos[REPO].raw["id"]
    assert count(engine, IssueEvent) == 4 * len(expected())
    commented = sum(1 for n in expected() for e in env.repos[REPO].timelines[n] if e["event"] == "commented")
    assert count(engine, IssueComment) == commented > 0
    assert count(engine, IssueFixLink) == len(expected())
    # no REST request at all: 3 pages of up to 100 issues, the first also bringing the repository
    assert [r.path for r in env.requests()] == ["/graphql"] * 3
    assert [p.get("after") is None for p in pages(env)] == [True, False, False]
    assert [p["withRepo"] for p in pages(env)] == ["True", "False", "False"]
    run = last_run(engine)
    assert run.status == "ok" and run.parameters["api"] == "graphql"
    assert run.counts["requests"] == 3 and run.counts["issues_new"] == len(expected())
    assert run.counts["graphql_cost"] == 6 and run.counts["comments"] == commented


def test_long_timelines_are_paged_by_nested_cursors(env: FakeGitHub, cli, engine: Engine) -> None:
    t0 = datetime(2023, 6, 1, tzinfo=UTC)
    tl = env.repos[REPO].timelines
    tl[1] = [env.event("commented", t0 + timedelta(minutes=k)) for k in range(250)]
    tl[2] = [env.event("labeled", t0 + timedelta(minutes=k)) for k in range(150)]
    result = mine(cli)
    assert result.exit_code == 0, result.output
    nested = pages(env, "TimelinePages")
    # one follow-up asks for both issues' second pages; the next only for #1's third
    assert [sorted(k for k in q if k.startswith("id")) for q in nested] == [["id0", "id1"], ["id0"]]
    with Session(engine) as s:
        per_issue = dict(s.execute(select(Issue.number, func.count()).join(IssueEvent).group_by(Issue.number)).all())
        comments_1 = s.execute(
            select(func.count()).select_from(IssueComment).join(Issue).where(Issue.number == 1)
        ).scalar_one()
    assert per_issue[1] == 250 and per_issue[2] == 150 and comments_1 == 250
    assert last_run(engine).counts["requests"] == 3 + 2


def test_since_refetches_only_what_changed_and_a_no_change_resync_is_one_request(
    env: FakeGitHub, cli, engine: Engine
) -> None:
    assert mine(cli).exit_code == 0
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert len(env.requests()) == 1 and pages(env)[0]["since"]
    assert last_run(engine).counts["issues_updated"] == 0
    later = datetime(2025, 6, 1, tzinfo=UTC)
    env.repos[REPO].timelines[12].append(env.event("connected", later))
    env.touch(REPO, 12, later, title="renamed")
    events_before = count(engine, IssueEvent)
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert len(env.requests()) == 1
    run = last_run(engine)
    assert run.counts["issues_updated"] == 1 and run.counts["issues_new"] == 0
    assert count(engine, IssueEvent) == events_before + 1
    with Session(engine) as s:
        link = s.execute(select(IssueFixLink).join(Issue).where(Issue.number == 12)).scalar_one()
        cursor = s.execute(select(GithubCursor)).scalar_one()
    assert link.fix_linked and any(e["event"] == "connected" for e in link.evidence)
    assert cursor.since == later and cursor.completed


def test_state_filter_on_the_first_run_then_all_states(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli, "--state", "closed").exit_code == 0
    assert pages(env)[0]["operation"] == "IssuePage"
    with Session(engine) as s:
        assert set(s.execute(select(Issue.state)).scalars()) == {"closed"}
    env.touch(REPO, 8, datetime(2025, 1, 1, tzinfo=UTC), state="open", closed_at=None, state_reason=None)
    assert mine(cli, "--state", "closed").exit_code == 0
    with Session(engine) as s:
        assert s.execute(select(Issue.state).where(Issue.number == 8)).scalar_one() == "open"


# -- budget, tokens, faults ---------------------------------------------------------------------------


def test_low_budget_waits_for_the_reset(env: FakeGitHub, cli, engine: Engine) -> None:
    env.graphql.set_budget(9, window=4.0)  # a page costs 2 points; 5 are kept in reserve
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert "rate limit low" in result.output and "GraphQL points" in result.output
    assert count(engine, Issue) == len(expected())
    assert last_run(engine).counts["rate_limit_waits"] >= 1


def test_pages_are_sized_to_the_points_left_before_waiting(env: FakeGitHub, cli, engine: Engine) -> None:
    env.graphql.set_budget(8, window=4.0)  # a full page costs 2, half a page 1; 5 are kept in reserve
    result = mine(cli)
    assert result.exit_code == 0, result.output
    sizes = [int(p["first"]) for p in pages(env)]
    assert sizes[:2] == [100, 50], sizes  # 6 left after the first page: 1 point above the reserve pays 50 issues
    assert "1 GraphQL point(s) left before the reset: asking for 50 issues, not 100" in result.output
    assert "rate limit low" in result.output  # then nothing is left above the reserve: wait, and full pages again
    assert 100 in sizes[2:]
    assert count(engine, Issue) == len(expected())


def test_rate_limited_answer_waits_until_reset_then_retries(env: FakeGitHub, cli, engine: Engine) -> None:
    env.graphql.set_budget(5000, window=1.5, remaining=0)  # spent before we started
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert "GraphQL rate limit reached" in result.output
    run = last_run(engine)
    assert run.counts["rate_limit_waits"] == 1 and run.counts["rate_limit_wait_seconds"] >= 1
    assert count(engine, Issue) == len(expected())


def test_secondary_limit_backs_off(env: FakeGitHub, cli, engine: Engine) -> None:
    env.faults.append(
        Fault("/graphql", status=403, body=env.t.secondary_limit_body, headers={"Retry-After": "1"}, skip=1)
    )
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert last_run(engine).counts["rate_limit_waits"] == 1 and count(engine, Issue) == len(expected())


def test_rotates_to_the_token_with_budget_left(env: FakeGitHub, cli, engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", f"{TOKEN},{OTHER}")
    env.remaining[TOKEN], env.remaining[OTHER] = 4000, 3000  # REST: the first token starts
    env.reset_at[TOKEN] = env.reset_at[OTHER] = time.time() + 3600
    env.graphql.remaining[TOKEN], env.graphql.remaining[OTHER] = 8, 4000
    env.graphql.reset_at[TOKEN] = env.graphql.reset_at[OTHER] = time.time() + 3600
    result = mine(cli)
    assert result.exit_code == 0, result.output
    used = [r.authorization.split()[-1] for r in env.requests("graphql")]
    assert used[0] == TOKEN and set(used[1:]) == {OTHER}
    assert "switching to token #2" in result.output and TOKEN not in result.output
    run = last_run(engine)
    assert run.counts["token_switches"] == 1 and run.counts["rate_limit_waits"] == 0
    assert count(engine, Issue) == len(expected())


def test_502_and_partial_errors_are_retried_with_a_smaller_page(env: FakeGitHub, cli, engine: Engine) -> None:
    env.faults.append(Fault("/graphql", status=502, kind="graphql", skip=1, times=1))
    env.graphql.partial_errors = 1
    result = mine(cli)
    assert result.exit_code == 0, result.output
    firsts = [p["first"] for p in pages(env)]
    assert firsts[:3] == ["100", "50", "25"]  # a partial answer, then a 502, each retried with half the issues
    assert last_run(engine).counts["retries"] == 2
    assert count(engine, Issue) == len(expected())
    assert sorted(Session(engine).execute(select(Issue.number)).scalars()) == expected()


def test_a_query_that_keeps_failing_is_one_line_naming_repository_and_cursor(
    env: FakeGitHub, cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.graphql.partial_errors = 100
    monkeypatch.setattr("miners.github.client.GitHubClient._backoff", lambda self, *a: None)
    result = mine(cli)
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and REPO in lines[0] and "the first page" in lines[0]
    assert "timeout" in lines[0]
    assert count(engine, Repository) == 0 and count(engine, Issue) == 0  # nothing half-written
    env.graphql.partial_errors = 0
    env.faults.append(Fault("/graphql", status=200, body="{}", kind="graphql", skip=1, times=100))
    result = mine(cli)
    lines = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and REPO in lines[0] and "at cursor " in lines[0]
    assert count(engine, Issue) == 100  # the first page is kept; the cursor stops before the failing one


def test_unknown_repository_is_one_line_and_writes_nothing(env: FakeGitHub, cli, engine: Engine) -> None:
    result = cli("mine", "github", "--repo", "nobody/nothing")
    assert result.exit_code == 2 and "nobody/nothing" in result.output
    assert count(engine, Repository) == 0


def test_graphql_without_a_token_is_refused(env: FakeGitHub, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTEROP_GITHUB_TOKEN")
    result = mine(cli, "--api", "graphql")
    assert result.exit_code == 2 and "needs a token" in result.output


# -- kill and resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_killed_run_resumes_at_the_page_without_loss_or_duplicates(
    env: FakeGitHub, cli, engine: Engine, db_url: str, sig: signal.Signals
) -> None:
    held, release = threading.Event(), threading.Event()

    def hold_third_page(rec: object) -> None:
        if getattr(rec, "path", "") == "/graphql" and len(pages(env)) == 3:
            held.set()
            release.wait(60)

    env.on_request = hold_third_page
    child_env = {**os.environ, "INTEROP_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "mine", "github", "--repo", REPO, "--batch-size", "1"],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=as_if_typed,  # stops on SIGINT even when this test run was started in the background
    )
    try:
        deadline = time.time() + 120
        while not held.is_set() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert held.is_set() and proc.poll() is None, "the miner never asked for the third page"
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=30) != 0
    finally:
        env.on_request = None
        release.set()
    assert count(engine, Issue) == 200  # two complete pages committed, the third never arrived
    with Session(engine) as s:
        since = s.execute(select(GithubCursor.since)).scalar_one()
    env.reset_log()
    result = mine(cli)
    assert result.exit_code == 0, result.output
    first = pages(env)[0]
    assert first["since"] == since.strftime("%Y-%m-%dT%H:%M:%SZ") and "after" not in first  # where it stopped
    assert len(pages(env)) == 1  # the rest fits one page: nothing read twice but the tie at the cursor
    assert count(engine, Issue) == len(expected())
    assert count(engine, IssueEvent) == 4 * len(expected())
    assert count(engine, IssueFixLink) == len(expected())
    with Session(engine) as s:
        dup = s.execute(select(Issue.number, func.count()).group_by(Issue.number).having(func.count() > 1)).all()
    assert dup == [] and last_run(engine).counts["issues_new"] == len(expected()) - 200


# -- the same rows from REST and GraphQL -------------------------------------------------------------

ISSUE_COLUMNS = (
    "number",
    "title",
    "body",
    "state",
    "state_reason",
    "labels",
    "author",
    "created_at",
    "updated_at",
    "closed_at",
    "comment_count",
    "html_url",
    "hydrated",
)
EVENT_COLUMNS = (
    "event_key",
    "event",
    "actor",
    "commit_id",
    "source_repository",
    "source_number",
    "source_state",
    "source_is_pull_request",
    "created_at",
)
COMMENT_COLUMNS = ("comment_key", "github_id", "author", "author_association", "body", "created_at", "updated_at")


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every stored row of the mined tables, by natural key, without ids, fetch times and raw payloads."""
    with Session(engine) as s:
        repo = s.execute(select(Repository.full_name, Repository.github_id)).all()
        issues = {
            r.number: tuple(getattr(r, c) for c in ISSUE_COLUMNS)
            for r in s.execute(select(Issue)).scalars()
            if r.timeline_fetched_at is not None
        }
        events = sorted(
            (n, *(getattr(e, c) for c in EVENT_COLUMNS))
            for n, e in s.execute(select(Issue.number, IssueEvent).join(IssueEvent)).all()
        )
        comments = sorted(
            (n, *(getattr(c, k) for k in COMMENT_COLUMNS))
            for n, c in s.execute(select(Issue.number, IssueComment).join(IssueComment)).all()
        )
        links = sorted(
            (n, k.rule_version, k.fix_linked, repr(k.evidence))
            for n, k in s.execute(select(Issue.number, IssueFixLink).join(IssueFixLink)).all()
        )
        cursor = s.execute(select(GithubCursor.since, GithubCursor.completed)).all()
    return {"repo": repo, "issues": issues, "events": events, "comments": comments, "links": links, "cursor": cursor}


def wipe(engine: Engine) -> None:
    with Session(engine) as s:
        for model in (IssueComment, IssueFixLink, IssueEvent, Issue, GithubCursor, GithubCommentCursor, Repository):
            s.execute(delete(model))
        s.commit()


def test_rest_and_graphql_store_identical_rows(env: FakeGitHub, cli, engine: Engine) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    tl = env.repos[REPO].timelines
    tl[3].append(env.event("cross-referenced", t0, source_repo="pytorch/vision", source_number=9, source_is_pr=False))
    tl[3].append(env.event("cross-referenced", t0, source_repo="other/repo", source_number=5))
    tl[4].append(env.event("unlabeled", t0))
    tl[5] = [env.event("commented", t0 + timedelta(minutes=k)) for k in range(130)]  # nested pages
    env.repos[REPO].issues[6]["labels"].append({"name": "bug", "color": "d73a4a"})
    snaps = {}
    for api in ("rest", "graphql"):
        wipe(engine)
        env.reset_log()
        result = mine(cli, "--api", api)
        assert result.exit_code == 0, result.output
        snaps[api] = snapshot(engine)
        snaps[api + "_requests"] = len(env.requests())
    rest, gql = snaps["rest"], snaps["graphql"]
    assert len(rest["issues"]) == len(expected()) and len(rest["comments"]) > 130
    for part in ("repo", "issues", "events", "comments", "links", "cursor"):
        assert gql[part] == rest[part], part
    assert any(link[2] for link in rest["links"]) and not all(link[2] for link in rest["links"])
    assert snaps["graphql_requests"] * 30 < snaps["rest_requests"]
