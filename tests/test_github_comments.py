"""Issue comments over REST: the repository's comment stream (`issues/comments?since=`, its own cursor), edits,
deletions (an issue whose comment count changed is listed whole), faults; against the local GitHub-like server
with real PyGithub, on both databases. REST and GraphQL leave the same comment rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
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
from db.queries.issues import issue_discussion
from tests.support.github_server import FakeGitHub, Fault

TOKEN = "ghp_CommentTestToken0123456789abcdef"
REPO = "onnx/onnx"
N = 40  # items 1..N, every 7th a PR
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def gh(shared_dir: Path) -> Iterator[FakeGitHub]:
    server = FakeGitHub(shared_dir, tokens=(TOKEN,))
    server.add_repo(REPO)
    server.populate(REPO, N, pr_every=7, events_per_issue=1)  # timelines without comments
    with server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub) -> FakeGitHub:
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("INTEROP_GITHUB_BASE_URL", gh.url)
    monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
    monkeypatch.setenv("INTEROP_GITHUB_API", "rest")
    return gh


def mine(cli, *args: str):  # type: ignore[no-untyped-def]
    return cli("mine", "github", "--repo", REPO, *args)


def last_run(engine: Engine) -> IngestRun:
    with Session(engine) as s:
        return s.execute(select(IngestRun).order_by(IngestRun.id.desc())).scalars().first()  # type: ignore[union-attr]


def stored(engine: Engine) -> dict[int, tuple[Any, ...]]:
    """github id → (issue number, author, body, created_at, updated_at, deleted?) of every stored comment."""
    with Session(engine) as s:
        rows = s.execute(select(Issue.number, IssueComment).join(IssueComment)).all()
    return {
        int(c.github_id): (n, c.author, c.body, c.created_at, c.updated_at, c.deleted_at is not None) for n, c in rows
    }


def on_github(gh: FakeGitHub, prs: bool = False) -> dict[int, tuple[Any, ...]]:
    """What the stored comments must be: every comment of every (non-PR) issue on the server."""
    out = {}
    for number, timeline in gh.repos[REPO].timelines.items():
        if number % 7 == 0 and not prs:
            continue
        for e in timeline:
            if e["event"] == "commented":
                when = datetime.fromisoformat(e["created_at"].replace("Z", "+00:00"))
                upd = datetime.fromisoformat(e["updated_at"].replace("Z", "+00:00"))
                out[int(e["id"])] = (number, e["user"]["login"], e["body"], when, upd, False)
    return out


def discuss(gh: FakeGitHub, per_issue: int = 6, tie: int = 0) -> None:
    """`per_issue` comments on each item (PRs too), one minute apart, long bodies with a traceback; `tie`
    more comments on issue 1 sharing one timestamp (more than a page of them)."""
    for number in range(1, N + 1):
        for k in range(per_issue):
            when = T0 + timedelta(minutes=number * 10 + k)
            body = f'comment {k} on #{number}\n```\nTraceback (most recent call last):\n  File "x.py"\n```\n' + (
                "long line " * 2000 if k == 0 else ""
            )
            gh.add_comment(REPO, number, when, body, author=f"user{k}")
    for k in range(tie):
        gh.add_comment(REPO, 1, T0 + timedelta(days=30), f"tied {k}", author="tie")


def test_comment_stream_pages_keyset_and_stores_every_comment_of_stored_issues(
    env: FakeGitHub, cli, engine: Engine
) -> None:
    discuss(env, per_issue=6, tie=130)  # 240 + 130 comments: pages by `since`, then page=2 of the tied group
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 0, result.output
    assert stored(engine) == on_github(env)
    pages = [r.query for r in env.requests("comments")]
    assert all(q["sort"] == "updated" and q["direction"] == "asc" for q in pages)
    assert "since" not in pages[0] and pages[1]["since"] > "2024-05-01"  # keyset: the next page asks since=
    assert [q.get("page") for q in pages[-2:]] == [None, "2"]  # 130 comments of one instant: paged through
    run = last_run(engine).counts
    prs = [n for n in range(1, N + 1) if n % 7 == 0]
    assert run["comments_skipped"] == 6 * len(prs) and run["comments_stored"] >= 240 + 130 - 6 * len(prs)
    assert "comments stored" in result.output
    with Session(engine) as s:
        long = s.execute(select(IssueComment).where(IssueComment.body.like("comment 0 on #3\n%"))).scalar_one()  # type: ignore[union-attr]
        assert len(long.body or "") > 20000 and long.raw and long.raw["issue_url"].endswith("/issues/3")


def test_since_rerun_fetches_only_new_and_edited_then_is_idempotent(env: FakeGitHub, cli, engine: Engine) -> None:
    discuss(env, per_issue=3)
    assert mine(cli, "--timelines", "none").exit_code == 0
    with Session(engine) as s:
        cursor = s.execute(select(GithubCommentCursor.since)).scalar_one()
    before = stored(engine)
    later = T0 + timedelta(days=60)
    edited = next(c for c, v in before.items() if v[0] == 4)
    env.edit_comment(REPO, edited, later, "edited: the real cause is the opset")
    new = env.add_comment(REPO, 9, later + timedelta(minutes=1), "a new finding")
    env.reset_log()
    assert mine(cli, "--timelines", "none").exit_code == 0
    first = env.requests("comments")[0].query
    assert first["since"] == cursor.strftime("%Y-%m-%dT%H:%M:%SZ")
    # only what changed since the cursor came back (plus the comment at the cursor's own instant)
    assert last_run(engine).counts["comments_seen"] == 3
    after = stored(engine)
    assert after == on_github(env)
    assert after[edited][2] == "edited: the real cause is the opset" and after[edited][4] == later
    assert after[edited][3] == before[edited][3]  # created_at kept
    assert after[int(new["id"])][:3] == (9, "coder", "a new finding")
    assert mine(cli, "--timelines", "none").exit_code == 0  # an unchanged re-run: nothing new is written
    assert stored(engine) == after and last_run(engine).counts["issues_updated"] == 0
    env.reset_log()
    assert mine(cli, "--timelines", "none").exit_code == 0
    assert [r.status for r in env.requests()] == [304, 304]  # and from then on two free conditional requests
    assert stored(engine) == after


def test_deleted_comment_is_marked_when_the_issue_count_drops(env: FakeGitHub, cli, engine: Engine) -> None:
    discuss(env, per_issue=3)
    assert mine(cli, "--timelines", "none").exit_code == 0
    gone = next(c for c, v in stored(engine).items() if v[0] == 5)
    env.delete_comment(REPO, gone, when=T0 + timedelta(days=70))
    env.reset_log()
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 0, result.output
    assert [r.path for r in env.requests("issue_comments")] == [f"/repos/{REPO}/issues/5/comments"]
    now = stored(engine)
    assert now[gone][5] is True and sum(1 for v in now.values() if v[5]) == 1  # kept, marked, nothing else
    assert {c: v for c, v in now.items() if c != gone} == on_github(env)
    assert last_run(engine).counts["comments_deleted"] == 1
    with Session(engine) as s:
        five = s.execute(select(Issue.id).where(Issue.number == 5)).scalar_one()
        discussion = issue_discussion(s, five)
    assert len(discussion) == 3 and sum(c.deleted for c in discussion) == 1
    assert [c.created_at for c in discussion] == sorted(c.created_at for c in discussion)
    env.reset_log()
    assert mine(cli, "--timelines", "none").exit_code == 0
    assert env.requests("issue_comments") == []  # listed once per change, not every run


def test_deleted_comment_is_marked_from_a_refetched_timeline_the_same_by_rest_and_graphql(
    env: FakeGitHub, cli, engine: Engine
) -> None:
    discuss(env, per_issue=2)
    gone = next(int(e["id"]) for e in env.repos[REPO].timelines[8] if e["event"] == "commented")
    edited = next(int(e["id"]) for e in env.repos[REPO].timelines[9] if e["event"] == "commented")
    snaps = {}
    for api in ("rest", "graphql"):
        with Session(engine) as s:
            for model in (IssueComment, IssueFixLink, IssueEvent, Issue, GithubCursor, GithubCommentCursor, Repository):
                s.execute(delete(model))
            s.commit()
        server = env.repos[REPO]
        saved = {n: [dict(e) for e in t] for n, t in server.timelines.items()}
        saved_issues = {n: dict(i) for n, i in server.issues.items()}
        assert mine(cli, "--api", api).exit_code == 0
        env.delete_comment(REPO, gone, when=T0 + timedelta(days=80))
        env.edit_comment(REPO, edited, T0 + timedelta(days=80), "edited body")
        env.touch(REPO, 9, T0 + timedelta(days=80))
        result = mine(cli, "--api", api)
        assert result.exit_code == 0, result.output
        snaps[api] = stored(engine)
        server.timelines.clear()
        server.timelines.update(saved)
        server.issues.clear()
        server.issues.update(saved_issues)
    assert snaps["rest"][gone][5] is True and snaps["rest"][edited][2] == "edited body"
    assert snaps["graphql"] == snaps["rest"]


# -- faults ----------------------------------------------------------------------------------------


def test_5xx_on_a_comment_page_is_retried(env: FakeGitHub, cli, engine: Engine) -> None:
    discuss(env, per_issue=6)
    env.faults.append(Fault("/issues/comments", status=502, kind="comments", skip=1, times=2))
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 0, result.output
    assert [r.status for r in env.requests("comments")][:4] == [200, 502, 502, 200]
    assert last_run(engine).counts["retries"] == 2
    assert stored(engine) == on_github(env)


def test_rate_limit_on_the_comment_stream_waits_and_completes(env: FakeGitHub, cli, engine: Engine) -> None:
    discuss(env, per_issue=3)
    reset = str(int(time.time()) + 1)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": reset}
    env.faults.append(
        Fault("/issues/comments", status=403, body=env.t.primary_limit_body, kind="comments", headers=headers)
    )
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 0, result.output
    assert "rate limit" in result.output and "sleeping" in result.output
    assert last_run(engine).counts["rate_limit_waits"] == 1
    assert stored(engine) == on_github(env)


def test_bad_json_page_stops_the_cursor_with_one_line(
    env: FakeGitHub, cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEROP_GITHUB_MAX_WAIT", "2")  # one 1 s backoff, then the retry budget is spent
    discuss(env, per_issue=6)
    env.faults.append(Fault("/issues/comments", status=200, body='[{"id": 1, ', kind="comments", skip=1, times=100))
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "malformed JSON" in lines[0] and f"/repos/{REPO}/issues/comments" in lines[0]
    assert "page 1" in lines[0] and "since 2024-" in lines[0]  # which page: the second asks since= the first's end
    kept = stored(engine)
    assert 0 < len(kept) < len(on_github(env))
    with Session(engine) as s:
        cursor = s.execute(select(GithubCommentCursor.since)).scalar_one()
    assert cursor == max(v[4] for v in kept.values())  # exactly what was stored
    env.faults.clear()
    env.reset_log()
    assert mine(cli, "--timelines", "none").exit_code == 0
    assert env.requests("comments")[0].query["since"] == cursor.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stored(engine) == on_github(env)


def test_a_comment_that_cannot_be_read_is_never_passed(env: FakeGitHub, cli, engine: Engine) -> None:
    discuss(env, per_issue=3)
    bad = next(e for e in env.repos[REPO].timelines[6] if e["event"] == "commented")
    good = bad["created_at"]
    bad["created_at"] = "yesterday"
    result = mine(cli, "--timelines", "none")
    assert result.exit_code == 2
    assert f"comment {bad['id']} of {REPO} from GET /repos/{REPO}/issues/comments" in result.output
    kept = stored(engine)
    assert kept and max(v[0] for v in kept.values()) < 6  # everything before it, nothing after
    with Session(engine) as s:
        cursor = s.execute(select(GithubCommentCursor.since)).scalar_one()
    assert cursor == max(v[4] for v in kept.values())
    bad["created_at"] = good
    assert mine(cli, "--timelines", "none").exit_code == 0
    assert stored(engine) == on_github(env)
