"""The GitHub miner end to end: PyGithub against a local GitHub-like server, into both databases."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import IngestRun, Issue, IssueEvent, IssueFixLink, Repository
from miners.github.fixrule import FixRule, evaluate, load_rule
from tests.support.github_server import FakeGitHub, Fault, load_replay
from tests.support.processes import as_if_typed

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghp_TestSecretToken0123456789abcdef"
REPO = "pytorch/pytorch"
N = 120  # items 1..N; every 7th is a PR, every 5th is open


@pytest.fixture
def gh(shared_dir: Path) -> Iterator[FakeGitHub]:
    server = FakeGitHub(shared_dir, tokens=(TOKEN,))
    server.add_repo(REPO)
    server.populate(REPO, N, pr_every=7, open_every=5, labels=("module: onnx",))
    with server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub) -> FakeGitHub:
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("INTEROP_GITHUB_BASE_URL", gh.url)
    monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
    monkeypatch.setenv("INTEROP_GITHUB_API", "rest")  # the REST path (GraphQL: tests/test_github_graphql.py)
    return gh


def mine(cli, *args: str):  # type: ignore[no-untyped-def]
    return cli("mine", "github", "--repo", REPO, *args)


def count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def issues_expected(state: str = "all") -> list[int]:
    nums = [n for n in range(1, N + 1) if n % 7]
    if state == "closed":
        nums = [n for n in nums if n % 5]
    return nums


def last_run(engine: Engine) -> IngestRun:
    with Session(engine) as s:
        return s.execute(select(IngestRun).order_by(IngestRun.id.desc())).scalars().first()  # type: ignore[union-attr]


# -- replay payloads -------------------------------------------------------------------------------


def test_replay_files_parse_into_real_exchanges(shared_dir: Path) -> None:
    ex = load_replay(shared_dir / "data" / "github-replay" / "Repository.testGetIssuesWithArguments.txt")
    assert [e.verb for e in ex] == ["GET"] * len(ex)
    assert any("since=" in e.path for e in ex)
    timeline = load_replay(shared_dir / "data" / "github-replay" / "Issue.testGetTimeline.txt")[0]
    assert timeline.path.endswith("/timeline") and timeline.status == 200


# -- sync, re-sync, incremental ------------------------------------------------------------------


def test_full_sync_stores_issues_events_and_excludes_prs(env: FakeGitHub, cli, engine: Engine) -> None:
    result = mine(cli)
    assert result.exit_code == 0, result.output
    with Session(engine) as s:
        numbers = sorted(s.execute(select(Issue.number)).scalars())
        repo = s.execute(select(Repository)).scalar_one()
        issue = s.execute(select(Issue).where(Issue.number == 8)).scalar_one()
    assert numbers == issues_expected()  # PRs (every 7th) never stored
    assert repo.full_name == REPO and repo.raw and repo.raw["full_name"] == REPO
    assert issue.raw and issue.raw["number"] == 8 and issue.labels == ["module: onnx"]
    assert issue.state == "closed" and issue.closed_at is not None and issue.author
    assert count(engine, IssueEvent) == 4 * len(issues_expected())
    run = last_run(engine)
    assert run.kind == "github-mine" and run.status == "ok"
    assert run.counts["issues_new"] == len(issues_expected()) and run.counts["prs_skipped"] == N // 7
    # 1 repository + 2 list pages (120 items, 100 per page) + one timeline per issue + 1 page of the comment
    # stream (fewer than 100 comments); no PR timelines
    assert sum(1 for t in env.repos[REPO].timelines.values() for e in t if e["event"] == "commented") < 100
    assert run.counts["requests"] == len(env.requests()) == 1 + 2 + len(issues_expected()) + 1
    assert not [r for r in env.requests("timeline") if int(r.path.split("/")[-2]) % 7 == 0]
    assert "PRs skipped" in result.output


def test_long_timeline_is_paged(env: FakeGitHub, cli, engine: Engine) -> None:
    t0 = datetime(2023, 6, 1, tzinfo=UTC)
    env.repos[REPO].timelines[1] = [env.event("commented", t0 + timedelta(minutes=k)) for k in range(150)]
    assert mine(cli).exit_code == 0
    assert [r.query.get("page", "1") for r in env.requests("timeline") if "/issues/1/" in r.path] == ["1", "2"]
    with Session(engine) as s:
        n = s.execute(select(func.count()).select_from(IssueEvent).join(Issue).where(Issue.number == 1)).scalar_one()
    assert n == 150


def test_no_change_resync_costs_one_request_then_a_304(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli).exit_code == 0
    env.reset_log()
    assert mine(cli).exit_code == 0
    # one issue page and one comment-stream page, both from their cursors
    assert len(env.requests()) == 2 and env.requests("issues")[0].query["since"]
    assert env.requests("comments")[0].query["since"]
    assert last_run(engine).counts["issues_updated"] == 0
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert [r.status for r in env.requests()] == [304, 304]  # ETags kept: GitHub does not charge a 304
    assert last_run(engine).counts["not_modified"] == 2
    assert count(engine, Issue) == len(issues_expected())


def test_one_updated_issue_is_the_only_one_refetched(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli).exit_code == 0
    events_before = count(engine, IssueEvent)
    later = datetime(2025, 6, 1, tzinfo=UTC)
    env.repos[REPO].timelines[12].append(env.event("connected", later))
    env.touch(REPO, 12, later, title="renamed")
    env.reset_log()
    assert mine(cli).exit_code == 0
    kinds = [(r.path.rsplit("/", 2)[-2:]) for r in env.requests("timeline")]
    assert kinds == [["12", "timeline"]] and len(env.requests()) == 3  # + the comment stream's page
    run = last_run(engine)
    assert run.counts["issues_updated"] == 1 and run.counts["issues_new"] == 0
    assert count(engine, IssueEvent) == events_before + 1
    with Session(engine) as s:
        assert s.execute(select(Issue.title).where(Issue.number == 12)).scalar_one() == "renamed"
        link = s.execute(select(IssueFixLink).join(Issue).where(Issue.number == 12)).scalar_one()
    assert link.fix_linked and any(e["event"] == "connected" for e in link.evidence)


def test_issue_updated_while_paging_shifts_nothing_out(env: FakeGitHub, cli, engine: Engine) -> None:
    """With page=N paging, an issue updated mid-run moves to the end and pushes an unseen issue onto the
    page already read (lost for good: its updated_at is below the cursor); keyset paging avoids that."""
    later = datetime(2025, 3, 1, tzinfo=UTC)

    def update_after_first_page(record) -> None:  # type: ignore[no-untyped-def]
        if record.path.endswith("/issues") and len(env.requests("issues")) == 1:
            env.touch(REPO, 5, later, title="edited while mining")

    env.on_request = update_after_first_page
    assert mine(cli).exit_code == 0
    with Session(engine) as s:
        numbers = sorted(s.execute(select(Issue.number)).scalars())
        title = s.execute(select(Issue.title).where(Issue.number == 5)).scalar_one()
    assert numbers == issues_expected() and title == "edited while mining"
    assert len(env.requests("timeline")) == len(issues_expected()) + 1  # #5 again, as it changed


def test_more_issues_with_one_timestamp_than_fit_on_a_page(env: FakeGitHub, cli, engine: Engine) -> None:
    same = datetime(2024, 9, 9, tzinfo=UTC)
    env.add_repo("busy/repo")
    for number in range(1, 251):
        env.add_issue("busy/repo", number, updated_at=same, timeline=[])
    result = cli("mine", "github", "--repo", "busy/repo", "--timelines", "none")
    assert result.exit_code == 0, result.output
    assert count(engine, Issue) == 250
    pages = [(r.query.get("since"), r.query.get("page", "1")) for r in env.requests("issues")]
    t = "2024-09-09T00:00:00Z"
    assert pages == [(None, "1"), (t, "1"), (t, "2"), (t, "3")]  # a tie group is paged by page number
    env.reset_log()
    assert cli("mine", "github", "--repo", "busy/repo", "--timelines", "none").exit_code == 0
    assert last_run(engine).counts["issues_unchanged"] == 250 and last_run(engine).counts["issues_new"] == 0


def test_state_and_label_filters(env: FakeGitHub, cli, engine: Engine) -> None:
    for n in (3, 4, 6):
        env.repos[REPO].issues[n]["labels"].append({"name": "question", "color": "fff"})
    env.add_issue(REPO, 500, state="closed", labels=("other",))
    result = mine(cli, "--state", "closed", "--label", "module: onnx", "--exclude-label", "question")
    assert result.exit_code == 0, result.output
    with Session(engine) as s:
        numbers = set(s.execute(select(Issue.number)).scalars())
    assert numbers == set(issues_expected("closed")) - {3, 4, 6}
    first = env.requests("issues")[0].query
    assert first["state"] == "closed" and first["labels"] == "module: onnx"
    assert last_run(engine).counts["skipped_excluded"] == 3
    # Two labels are two queries with a cursor each; a no-change re-run costs one request per query.
    assert mine(cli, "--label", "module: onnx", "--label", "other").exit_code == 0
    assert 500 in set(Session(engine).execute(select(Issue.number)).scalars())
    env.reset_log()
    assert mine(cli, "--label", "module: onnx", "--label", "other").exit_code == 0
    issue_pages = env.requests("issues")
    assert len(issue_pages) == 2 and {r.query["labels"] for r in issue_pages} == {"module: onnx", "other"}
    assert [r.status for r in env.requests("comments")] == [304, 304]  # one comment stream per repository


def test_reopened_issue_is_updated_by_a_closed_only_query(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli, "--state", "closed").exit_code == 0
    env.touch(REPO, 8, datetime(2025, 1, 1, tzinfo=UTC), state="open", closed_at=None)
    assert mine(cli, "--state", "closed").exit_code == 0
    with Session(engine) as s:
        assert s.execute(select(Issue.state).where(Issue.number == 8)).scalar_one() == "open"


def test_all_runs_every_toml_entry(
    env: FakeGitHub, cli, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.add_repo("onnx/tensorflow-onnx")
    env.populate("onnx/tensorflow-onnx", 10, labels=("bug",))
    toml = tmp_path / "interop.toml"
    toml.write_text(
        '[[miners.github]]\nrepo = "pytorch/pytorch"\nlabels = ["module: onnx"]\nstate = "closed"\n\n'
        '[[miners.github]]\nrepo = "onnx/tensorflow-onnx"\nexclude_labels = ["question"]\n'
    )
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))
    result = cli("mine", "github", "--all")
    assert result.exit_code == 0, result.output
    with Session(engine) as s:
        repos = dict(
            s.execute(
                select(Repository.full_name, func.count(Issue.id)).join(Issue).group_by(Repository.full_name)
            ).all()
        )
    assert repos == {REPO: len(issues_expected("closed")), "onnx/tensorflow-onnx": 10}
    toml.write_text('[[miners.github]]\nrepo = "x/y"\nlabel = "a"\nbogus = 1\n')
    bad = cli("mine", "github", "--all")
    assert bad.exit_code == 2 and "entry 1" in bad.output and "bogus" in bad.output


def test_enterprise_style_base_url_prefix(
    shared_dir: Path, cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGitHub(shared_dir, tokens=(TOKEN,), prefix="/api/v3") as server:
        server.add_repo(REPO)
        server.populate(REPO, 5)
        monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
        result = cli("mine", "github", "--repo", REPO, "--base-url", server.url)
    assert result.exit_code == 0, result.output
    assert count(engine, Issue) == 5


# -- rate limits and faults ------------------------------------------------------------------------


def test_rate_limit_hit_mid_pagination_waits_and_completes(env: FakeGitHub, cli, engine: Engine) -> None:
    reset = str(int(time.time()) + 1)
    env.faults.append(
        Fault(
            "/issues",
            status=403,
            body=env.t.primary_limit_body,
            kind="issues",
            skip=1,
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": reset},
        )
    )
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert "rate limit" in result.output and "sleeping" in result.output
    assert count(engine, Issue) == len(issues_expected())
    run = last_run(engine)
    assert run.counts["rate_limit_waits"] == 1 and run.counts["rate_limit_wait_seconds"] >= 1


def test_low_quota_sleeps_until_reset(env: FakeGitHub, cli, engine: Engine) -> None:
    env.set_rate_limit(40, window=1.5)
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert "rate limit low" in result.output
    assert count(engine, Issue) == len(issues_expected())
    assert last_run(engine).counts["rate_limit_waits"] >= 2
    assert all(r.status == 200 for r in env.requests())  # it slept before running out, never got a 403


def test_secondary_limit_with_retry_after(env: FakeGitHub, cli, engine: Engine) -> None:
    env.faults.append(Fault("/timeline", status=403, body=env.t.secondary_limit_body, headers={"Retry-After": "1"}))
    env.faults.append(Fault("/timeline", status=429, body='{"message": "too many"}', headers={"Retry-After": "1"}))
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert last_run(engine).counts["rate_limit_waits"] == 2
    assert count(engine, Issue) == len(issues_expected())


def test_502_page_is_retried(env: FakeGitHub, cli, engine: Engine) -> None:
    env.faults.append(Fault("/issues", status=502, kind="issues", skip=1, times=2))
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert [r.status for r in env.requests("issues")] == [200, 502, 502, 200]
    assert last_run(engine).counts["retries"] == 2
    assert count(engine, Issue) == len(issues_expected())


def test_gives_up_after_bounded_time_keeping_what_was_fetched(
    env: FakeGitHub, cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEROP_GITHUB_MAX_WAIT", "5")
    reset = str(int(time.time()) + 3600)
    env.faults.append(
        Fault(
            "/issues",
            status=403,
            body=env.t.primary_limit_body,
            kind="issues",
            skip=1,
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        )
    )
    result = mine(cli, "--batch-size", "10")
    assert result.exit_code == 2
    assert "rate limit" in result.output and "re-run" in result.output
    first_page = [n for n in issues_expected()][:86]  # page 1 holds items 1..100, of which 86 are issues
    assert count(engine, Issue) == len(first_page)
    run = last_run(engine)
    assert run.status == "failed" and "rate limit" in (run.error or "")
    assert mine(cli).exit_code == 0
    assert count(engine, Issue) == len(issues_expected())


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200, "body": '[{"number": 101, "title": "cut sh'},
        {"status": 200, "body": ""},
        {"truncate": 5000},  # a proxy cut the page: the short body is all there is
        {"truncate": 5000, "declare_full": True},  # the connection dropped mid-body
    ],
    ids=["bad-json", "empty-body", "cut-body", "dropped-connection"],
)
def test_a_truncated_or_garbled_200_is_retried_like_a_5xx(
    env: FakeGitHub, cli, engine: Engine, fault: dict[str, Any]
) -> None:
    env.faults.append(Fault("/issues", kind="issues", skip=1, **fault))
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert [r.status for r in env.requests("issues")] == [200, 200, 200]  # page 2 fetched twice
    assert "retry 1/5" in result.output
    assert last_run(engine).counts["retries"] == 1 and last_run(engine).status == "ok"
    assert count(engine, Issue) == len(issues_expected())


def test_malformed_json_is_a_clear_error_and_progress_is_kept(
    env: FakeGitHub, cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEROP_GITHUB_MAX_WAIT", "2")  # one 1 s backoff, then the retry budget is spent
    env.faults.append(Fault("/issues/30/timeline", status=200, body='[{"event": "closed", ', times=100))
    result = mine(cli, "--batch-size", "10")
    assert result.exit_code == 2
    assert "malformed JSON" in result.output and "/issues/30/timeline" in result.output
    env.faults.clear()
    kept = count(engine, Issue)
    assert kept == len([n for n in issues_expected() if n < 30])
    assert last_run(engine).status == "failed"
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert count(engine, Issue) == len(issues_expected())
    assert len(env.requests("timeline")) == len(issues_expected()) - kept  # nothing fetched twice


def test_an_issue_the_miner_cannot_read_stops_the_cursor_before_it(env: FakeGitHub, cli, engine: Engine) -> None:
    """The Miner contract: what was understood is stored, the cursor never moves past the unreadable item."""
    issue = env.repos[REPO].issues[30]
    good = issue["created_at"]
    issue["created_at"] = "not a time"
    try:
        result = mine(cli, "--batch-size", "10")
        assert result.exit_code == 2
        assert "issue 30 listed by GET /repos/pytorch/pytorch/issues cannot be read" in result.output
        kept = count(engine, Issue)
        assert kept == len([n for n in issues_expected() if n < 30])
        assert last_run(engine).status == "failed"
    finally:
        issue["created_at"] = good
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert count(engine, Issue) == len(issues_expected())
    assert len(env.requests("timeline")) == len(issues_expected()) - kept  # resumed at issue 30, nothing twice


def test_unknown_repository_is_one_line_and_writes_nothing(env: FakeGitHub, cli, engine: Engine) -> None:
    result = cli("mine", "github", "--repo", "nope/nope")
    assert result.exit_code == 2 and "not found on GitHub: GET /repos/nope/nope" in result.output
    assert count(engine, Repository) == 0
    assert last_run(engine).status == "failed"


def test_timeline_gone_between_listing_and_fetch(env: FakeGitHub, cli, engine: Engine) -> None:
    env.faults.append(Fault("/issues/9/timeline", status=410, body='{"message": "This issue was deleted"}'))
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert last_run(engine).counts["timelines_missing"] == 1
    with Session(engine) as s:
        nine = s.execute(select(Issue).where(Issue.number == 9)).scalar_one()
        verdicts = s.execute(
            select(func.count()).select_from(IssueFixLink).where(IssueFixLink.issue_id == nine.id)
        ).scalar_one()
    assert nine.raw and nine.timeline_fetched_at is not None and verdicts == 0  # stored, no verdict made up
    assert count(engine, Issue) == len(issues_expected())
    env.reset_log()
    assert mine(cli).exit_code == 0 and len(env.requests("timeline")) == 0  # not retried until it changes
    assert len(env.requests()) == 2  # the issue page and the comment stream's


def test_bad_token_is_one_line_without_the_token(env: FakeGitHub, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", "ghp_WrongWrongWrong")
    result = mine(cli)
    assert result.exit_code == 2 and "rejected the token" in result.output
    assert "ghp_WrongWrongWrong" not in result.output


def test_token_never_in_logs_db_or_exceptions(
    env: FakeGitHub,
    cli,
    engine: Engine,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    env.faults.append(Fault("/issues/40/timeline", status=200, body="[{not json", times=100))
    monkeypatch.setenv("INTEROP_GITHUB_MAX_WAIT", "2")  # give up after one retry
    failed = mine(cli)
    monkeypatch.delenv("INTEROP_GITHUB_MAX_WAIT")
    env.faults.clear()
    ok = mine(cli)
    assert failed.exit_code == 2 and ok.exit_code == 0
    assert all(r.authorization and TOKEN in r.authorization for r in env.requests())  # it was really used
    assert TOKEN not in failed.output + ok.output
    assert TOKEN not in caplog.text and caplog.text  # PyGithub logged requests, masked
    with engine.connect() as conn:
        for table in ("ingest_run", "repository", "issue", "issue_event", "github_cursor", "issue_fix_link"):
            dump = " ".join(str(row) for row in conn.execute(text(f"SELECT * FROM {table}")))
            assert TOKEN not in dump, table
    from miners.github.client import GitHubClient, GitHubError

    client = GitHubClient([TOKEN], env.url, min_interval=0, max_attempts=1)
    env.faults.append(Fault("/repos/pytorch/pytorch", status=500, body=f'{{"message": "echo {TOKEN}"}}'))
    with pytest.raises(GitHubError) as info:
        client.get(f"/repos/{REPO}")
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert TOKEN not in repr(client.__dict__)


def test_several_tokens_use_the_one_with_most_quota(env: FakeGitHub) -> None:
    from miners.github.client import GitHubClient

    other = "ghp_OtherToken"
    env.tokens.add(other)
    env.remaining[TOKEN], env.reset_at[TOKEN] = 10, time.time() + 3600
    env.remaining[other], env.reset_at[other] = 4000, time.time() + 3600
    client = GitHubClient([TOKEN, other], env.url, min_interval=0)
    client.get(f"/repos/{REPO}")
    assert env.requests()[-1].authorization.endswith(other)
    assert [r.path for r in env.requests("rate_limit")] == ["/rate_limit", "/rate_limit"]


def test_timeouts_are_retried_then_given_up_clearly(env: FakeGitHub) -> None:
    from miners.github.client import GitHubClient, GitHubUnavailable

    messages: list[str] = []
    client = GitHubClient([TOKEN], env.url, min_interval=0, timeout=1, backoff_base=0.1, notify=messages.append)
    env.faults.append(Fault(f"/repos/{REPO}", status=200, body="{}", delay=1.5))
    assert client.get_object(f"/repos/{REPO}")["full_name"] == REPO
    assert client.stats.retries == 1 and "ReadTimeout" in messages[0]
    env.faults.append(Fault(f"/repos/{REPO}", status=503, times=10))
    with pytest.raises(GitHubUnavailable, match="kept answering 503"):
        client.get_object(f"/repos/{REPO}")


def test_switches_token_when_one_runs_low(env: FakeGitHub) -> None:
    from miners.github.client import GitHubClient

    other = "ghp_OtherToken"
    env.tokens.add(other)
    env.remaining[TOKEN], env.reset_at[TOKEN] = 9, time.time() + 3600
    env.remaining[other], env.reset_at[other] = 8, time.time() + 3600
    messages: list[str] = []
    client = GitHubClient([TOKEN, other], env.url, min_interval=0, notify=messages.append)
    for _ in range(6):
        client.get_object(f"/repos/{REPO}")
    used = [r.authorization.split()[-1] for r in env.requests("repo")]
    assert used[0] == TOKEN and used[-1] == other and client.stats.rate_limit_waits == 0
    assert any("switching to token #2" in m for m in messages)
    assert all(TOKEN not in m and other not in m for m in messages)


# -- crash safety ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_killed_run_resumes_without_loss_or_duplicates(
    env: FakeGitHub, cli, engine: Engine, db_url: str, sig: signal.Signals
) -> None:
    import threading

    # The 70th timeline request is held until the signal has been sent, so the miner is stopped at the same
    # place however loaded the machine is (69 issues fully fetched, the 70th in flight).
    held, release = threading.Event(), threading.Event()

    def hold_seventieth(rec: object) -> None:
        if str(getattr(rec, "path", "")).endswith("/timeline") and len(env.requests("timeline")) == 70:
            held.set()
            release.wait(60)

    env.on_request = hold_seventieth
    child_env = {**os.environ, "INTEROP_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "mine", "github", "--repo", REPO, "--batch-size", "20"],
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
        assert held.is_set() and proc.poll() is None, "the miner never reached the 70th timeline request"
        masks = {
            k: v.strip()
            for k, v in (line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
            if k in ("SigBlk", "SigIgn", "SigCgt")
        }
        os.kill(proc.pid, sig)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the miner did not stop within 30 s of {sig.name}; its signal masks: {masks}"
            ) from None
        assert code != 0
    finally:
        env.on_request = None
        release.set()
    stored = count(engine, Issue)
    assert 20 <= stored < len(issues_expected())  # some batches committed, not all
    run = last_run(engine)
    if sig == signal.SIGINT:  # Ctrl-C: the batch in hand is committed and the run is marked interrupted
        assert run.status == "interrupted" and stored >= 69
    else:  # kill -9: the run row stays "running", the database is consistent up to the last batch
        assert run.status == "running" and stored % 20 == 0
    env.delay = 0
    env.reset_log()
    assert mine(cli).exit_code == 0
    assert count(engine, Issue) == len(issues_expected())
    assert count(engine, IssueEvent) == 4 * len(issues_expected())
    assert count(engine, IssueFixLink) == len(issues_expected())
    refetched = {int(r.path.split("/")[-2]) for r in env.requests("timeline")}
    assert len(refetched) <= len(issues_expected()) - stored + 1  # at most the boundary issue again
    with Session(engine) as s:
        dup = s.execute(select(Issue.number, func.count()).group_by(Issue.number).having(func.count() > 1)).all()
    assert dup == []


# -- one mining run per database ------------------------------------------------------------------


def _miner(db_url: str, *extra: str, out: int | None = subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "INTEROP_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "mine", "github", "--repo", REPO, *extra],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_mining_processes_on_one_database_take_turns(env: FakeGitHub, engine: Engine, db_url: str) -> None:
    """A second run says who holds the miner lock (exit 75, no request made); a waiting one runs after the first
    and finds nothing new: every issue is fetched and counted new exactly once."""
    import socket
    import threading

    gate = threading.Event()
    env.on_request = lambda rec: gate.wait(120) if rec.path.endswith("/timeline") else None
    first = _miner(db_url, out=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not env.requests("timeline") and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None and env.requests("timeline"), "the first miner never reached a timeline"
        seen = len(env.requests())
        busy = _miner(db_url)
        output, _ = busy.communicate(timeout=120)
        assert busy.returncode == 75, output
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: another `interop mine github` run"), output
        assert f"host {socket.gethostname()}, pid {first.pid}, since " in output and "--wait" in output
        assert len(env.requests()) == seen  # the refused run asked GitHub nothing

        waiting = _miner(db_url, "--wait", "120")
        said: list[str] = []
        told = threading.Event()

        def read() -> None:
            for line in waiting.stdout:  # type: ignore[union-attr]
                said.append(line)
                if "waiting up to 120s for the GitHub miner lock" in line:
                    told.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert told.wait(120), "".join(said)
        assert f"pid {first.pid}" in "".join(said)
        assert first.poll() is None  # it really waited for a run in progress
        gate.set()
        assert first.wait(timeout=120) == 0
        assert waiting.wait(timeout=120) == 0, "".join(said)
        reader.join(timeout=10)
    finally:
        gate.set()
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    with Session(engine) as s:
        runs = list(
            s.execute(select(IngestRun).where(IngestRun.kind == "github-mine").order_by(IngestRun.id)).scalars()
        )
    assert [r.status for r in runs] == ["ok", "ok"]
    assert [r.counts["issues_new"] for r in runs] == [len(issues_expected()), 0]
    assert runs[1].counts["timelines"] == 0  # it resumed from the first run's cursor
    assert len(env.requests("timeline")) == len(issues_expected())  # no timeline fetched twice
    assert count(engine, Issue) == len(issues_expected())
    from db import locks

    assert locks.holder(engine, "miner:github") is None  # released by the run that held it last


def test_a_killed_miners_lock_is_taken_over_at_once_on_its_host(env: FakeGitHub, cli, engine: Engine) -> None:
    from db import locks

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    owner = f"{socket.gethostname()}:{dead.pid}:deadbeef"
    assert locks.acquire(engine, "miner:github", owner, 3600)
    result = mine(cli)
    assert result.exit_code == 0, result.output
    assert locks.holder(engine, "miner:github") is None
    assert locks.acquire(engine, "miner:github", "elsewhere:1:cafe", 3600)  # another host: it cannot be checked
    busy = mine(cli)
    assert busy.exit_code == 75 and "host elsewhere, pid 1, since" in busy.output


# -- the fix rule ----------------------------------------------------------------------------------


def test_fix_rule_cases() -> None:
    rule = load_rule("study-v1")
    repo = "pytorch/pytorch"
    cases = [
        ({"event": "closed", "commit_id": "abc"}, True),
        ({"event": "closed", "commit_id": None}, False),
        ({"event": "referenced", "commit_id": "abc"}, True),
        ({"event": "referenced", "commit_id": None}, False),
        ({"event": "connected"}, True),
        ({"event": "cross-referenced", "source_repository": "pytorch/vision", "source_state": "closed"}, True),
        ({"event": "cross-referenced", "source_repository": "pytorch/pytorch", "source_state": "open"}, False),
        ({"event": "cross-referenced", "source_repository": "onnx/onnx", "source_state": "closed"}, False),
        ({"event": "labeled"}, False),
    ]
    for ev, expected in cases:
        assert evaluate(rule, repo, [ev])[0] is expected, ev
    narrow = FixRule("narrow", family="repo", family_repos=("onnx/onnx",))
    assert evaluate(narrow, repo, [cases[5][0]])[0] is False
    assert evaluate(narrow, repo, [cases[7][0]])[0] is True


def test_fix_flags_stored_and_relinked_without_requests(
    env: FakeGitHub, cli, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.repos[REPO].timelines[4].append(
        env.event("cross-referenced", datetime(2024, 5, 1, tzinfo=UTC), source_repo="onnx/onnx", source_number=9)
    )
    assert mine(cli).exit_code == 0
    with Session(engine) as s:
        flags = dict(
            s.execute(
                select(Issue.number, IssueFixLink.fix_linked)
                .join(IssueFixLink)
                .where(IssueFixLink.rule_version == "study-v1")
            ).all()
        )
    # populate(): number % 8 in 0..3 -> closed-with-commit, referenced-with-commit, xref, connected
    assert flags == {n: n % 8 < 4 for n in issues_expected()}
    toml = tmp_path / "interop.toml"
    toml.write_text(
        "[fix_rules.no-xref]\ncross_referenced_closed_same_family = false\n\n"
        '[fix_rules.family-onnx]\nfamily = "repo"\nfamily_repos = ["onnx/onnx"]\n'
    )
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))
    env.reset_log()
    result = cli("issues", "relink", "--rule-version", "no-xref")
    assert result.exit_code == 0, result.output
    assert cli("issues", "relink", "--rule-version", "family-onnx").exit_code == 0
    assert env.requests() == []
    with Session(engine) as s:

        def linked(version: str) -> set[int]:
            return set(
                s.execute(
                    select(Issue.number)
                    .join(IssueFixLink)
                    .where(IssueFixLink.rule_version == version, IssueFixLink.fix_linked.is_(True))
                ).scalars()
            )

        assert linked("no-xref") == {n for n in issues_expected() if n % 8 in (0, 1, 3)}
        assert linked("family-onnx") == {n for n in issues_expected() if n % 8 < 4} | {4}
        assert linked("study-v1") == {n for n in issues_expected() if n % 8 < 4}  # old verdicts kept
    # A re-fetched timeline refreshes the verdicts of every stored version, not only the mined one.
    env.repos[REPO].timelines[5].append(env.event("connected", datetime(2025, 2, 1, tzinfo=UTC)))
    env.touch(REPO, 5, datetime(2025, 2, 1, tzinfo=UTC))
    assert mine(cli).exit_code == 0
    with Session(engine) as s:
        assert 5 in linked("no-xref") and 5 in linked("family-onnx") and 5 in linked("study-v1")
    toml.write_text("[fix_rules.no-xref]\nconnected = false\n")
    changed = cli("issues", "relink", "--rule-version", "no-xref")
    assert changed.exit_code == 2 and "new version" in changed.output
    unknown = cli("issues", "relink", "--rule-version", "nope")
    assert unknown.exit_code == 2 and "unknown fix rule" in unknown.output


# -- samples, listing, queries ---------------------------------------------------------------------


def test_samples_are_reproducible_and_named(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli).exit_code == 0
    args = ["--repo", REPO, "--n", "10", "--seed", "42", "--fixed-only"]
    first = cli("issues", "sample", *args, "--name", "pilot")
    assert first.exit_code == 0 and "stored" in first.output
    again = cli("issues", "sample", *args, "--name", "pilot")
    assert again.exit_code == 0 and "nothing changed" in again.output
    twin = cli("issues", "sample", *args, "--name", "twin")
    members = first.output.split("members:")[1].split()
    assert members == twin.output.split("members:")[1].split() == again.output.split("members:")[1].split()
    assert all(int(m.strip("#,")) % 8 < 4 for m in members)  # fix-linked only
    clash = cli("issues", "sample", "--repo", REPO, "--n", "10", "--seed", "7", "--name", "pilot")
    assert clash.exit_code == 2 and "already exists with other arguments" in clash.output
    too_many = cli("issues", "sample", "--repo", REPO, "--n", "1000", "--seed", "1", "--name", "big")
    assert too_many.exit_code == 2 and "only" in too_many.output
    from db.queries.issues import IssueFilter, issue_list

    frame = issue_list(engine, IssueFilter(sample="pilot"))
    assert [f"#{n}," for n in frame["number"]][:-1] == members[:-1] and len(frame) == 10
    listed = cli("issues", "list", "--sample", "pilot")
    assert listed.exit_code == 0 and "10 issue(s)" in listed.output


def test_issue_queries(env: FakeGitHub, cli, engine: Engine) -> None:
    assert mine(cli).exit_code == 0
    from db.queries.issues import IssueFilter, IssueRef, issue_detail, issue_list, issues_over_time

    everything = issue_list(engine, IssueFilter(repositories=(REPO,)), limit=None)
    assert len(everything) == len(issues_expected())
    closed_fixed = issue_list(
        engine, IssueFilter(state="closed", fix_linked=True, labels=("module: onnx",)), limit=None
    )
    assert set(closed_fixed["number"]) == {n for n in issues_expected("closed") if n % 8 < 4}
    assert issue_list(engine, IssueFilter(labels=("nope",))).empty
    detail = issue_detail(engine, IssueRef(REPO, 8))
    assert detail is not None
    assert detail.issue["number"] == 8 and len(detail.timeline) == 4 and detail.timeline["event"].iloc[-1] == "closed"
    verdicts = detail.fix_verdicts
    assert bool(verdicts["fix_linked"].iloc[0]) and verdicts["rule_version"].iloc[0] == "study-v1"
    assert issue_detail(engine, IssueRef(REPO, 7)) is None
    over = issues_over_time(engine, IssueFilter()).groupby("what")["issues"].sum()
    assert over["opened"] == len(issues_expected())
    assert over["closed"] == len(issues_expected("closed"))
    shown = cli("issues", "show", f"{REPO}#8")
    assert shown.exit_code == 0 and "fix-linked" in shown.output


def test_issues_known_only_by_url_are_pointed_out_not_listed_as_blank_rows(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """Coding sheets add issues by URL; list and show say so (and how to fetch them) instead of printing Nones."""
    with Session(engine) as s:
        repo = Repository(full_name="pytorch/pytorch", first_seen_at=datetime(2024, 1, 1, tzinfo=UTC))
        s.add(repo)
        s.flush()
        s.add(
            Issue(
                repository_id=repo.id or 0,
                number=49403,
                html_url="https://github.com/pytorch/pytorch/issues/49403",
                hydrated=False,
            )
        )
        s.commit()
    listed = cli("issues", "list")
    assert listed.exit_code == 0 and "0 issue(s)" in listed.output
    assert "1 issue(s) known only by URL" in " ".join(listed.output.split()) and "1 of pytorch/pytorch" in listed.output
    shown = cli("issues", "show", "pytorch/pytorch#49403")
    assert shown.exit_code == 0 and "known only by its URL" in shown.output and "None" not in shown.output
    for flag, value in (("--repo", "nosuch/repo"), ("--sample", "nosuch")):
        bad = cli("issues", "list", flag, value)
        assert bad.exit_code == 2 and f"'{value}'" in bad.output and "known:" in bad.output
