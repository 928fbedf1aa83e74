"""Requests per issue and wall time of the GitHub miner's REST and GraphQL paths on the local GitHub-like server.

Usage: python -m benchmarks.mining [--issues 10000] [--apis rest,graphql] [--backends sqlite,postgresql]
       [--shared ../shared] [--baseline-issues 200]

One fake repository of `--issues` issues, each with 3-30 timeline events (the fix rule's closed / referenced /
cross-referenced / connected among them) and 0-20 comments, is mined by each API into a fresh database per
backend, with a rate limit hit mid-run and a few 502s on both paths. Prints per backend and API: the full
sync (requests per stored issue, wall time, events, comments), a no-change re-sync (target: exactly one
request per repository), and as a baseline the naive PyGithub loop (`get_issues()` + `get_timeline()`).
Targets: GraphQL <= 0.05 requests per issue for the full sync.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from miners.github.client import GitHubClient  # noqa: E402
from miners.github.fixrule import load_rule  # noqa: E402
from miners.github.miner import MineOptions, mine_query  # noqa: E402
from miners.github.source import IssueQuery  # noqa: E402
from tests.support.github_server import FakeGitHub, Fault  # noqa: E402

TOKEN = "bench-token"
REPO = "pytorch/pytorch"
LABEL = "module: onnx"
OTHER_EVENTS = ("labeled", "unlabeled", "subscribed", "assigned", "mentioned", "referenced", "cross-referenced")


def populate(server: FakeGitHub, n: int, seed: int = 7) -> tuple[int, int]:
    """`n` issues with 3-30 timeline events and 0-20 comments each; returns (events, comments) in total."""
    rng = random.Random(seed)
    t0 = datetime(2023, 1, 1, tzinfo=UTC)
    events = comments = 0
    for number in range(1, n + 1):
        when = t0 + timedelta(minutes=number)
        timeline = []
        for k in range(rng.randint(3, 30) - 1):
            kind = rng.choice(OTHER_EVENTS)
            at = when - timedelta(hours=1) + timedelta(seconds=k)
            if kind == "cross-referenced":
                timeline.append(server.event(kind, at, source_repo=REPO, source_number=n + number * 31 + k))
            elif kind == "referenced":
                timeline.append(server.event(kind, at, commit_id=f"{number * 97 + k:040x}"))
            else:
                timeline.append(server.event(kind, at))
        timeline.append(
            server.event(rng.choice(("closed", "connected")), when, commit_id=f"{number:040x}" if number % 2 else None)
        )
        n_comments = rng.randint(0, 20)
        timeline += [server.event("commented", when - timedelta(minutes=30, seconds=k)) for k in range(n_comments)]
        timeline.sort(key=lambda e: e["created_at"])
        events += len(timeline)
        comments += n_comments
        server.add_issue(REPO, number, labels=(LABEL,), updated_at=when, timeline=timeline)
    return events, comments


def inject_faults(server: FakeGitHub, api: str, n_issues: int) -> None:
    """A primary rate limit about half way through the run and three 502s, on the path under test."""
    reset = str(int(time.time()) + 2)
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": reset}
    if api == "graphql":
        pages = max(2, n_issues // 100)
        body = json.dumps({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]})
        server.faults += [
            Fault("/graphql", status=200, body=body, headers=limited, kind="graphql", skip=pages // 2),
            Fault("/graphql", status=502, kind="graphql", skip=pages // 4),
            Fault("/graphql", status=502, kind="graphql", skip=(3 * pages) // 4, times=2),
        ]
    else:
        server.faults += [
            Fault("/timeline", status=403, body=server.t.primary_limit_body, headers=limited, skip=n_issues // 2),
            Fault("/timeline", status=502, skip=n_issues // 4),
            Fault("/issues", status=502, kind="issues", skip=1, times=2),
        ]


def naive_baseline(server: FakeGitHub, n: int) -> float:
    """Requests per issue of the obvious PyGithub loop over the first `n` issues."""
    from github import Auth, Github

    server.reset_log()
    gh = Github(auth=Auth.Token(TOKEN), base_url=server.url, seconds_between_requests=None, retry=None)
    seen = 0
    for issue in gh.get_repo(REPO).get_issues(state="all", labels=[LABEL]):
        if issue.pull_request:  # the pitfall: a missing attribute re-fetches the whole issue
            continue
        list(issue.get_timeline())
        seen += 1
        if seen >= n:
            break
    gh.close()
    return len(server.requests()) / seen


def bench(url: str, server: FakeGitHub, n_issues: int, api: str) -> dict[str, Any]:
    """A full sync (with faults) and a no-change re-sync of one API into a fresh database."""
    upgrade(url)
    engine = make_engine(url)
    client = GitHubClient([TOKEN], server.url, min_interval=0, backoff_base=0.2)
    query = IssueQuery(REPO, state="all", label=LABEL)
    rule, options = load_rule(), MineOptions(api=api)
    out: dict[str, Any] = {}
    server.faults.clear()
    inject_faults(server, api, n_issues)
    server.reset_log()
    start = time.perf_counter()
    counts = mine_query(engine, client, query, rule, options)
    out["full_seconds"] = time.perf_counter() - start
    assert counts["issues_new"] == n_issues, counts
    out["full_requests"] = len(server.requests())
    out["full_per_issue"] = out["full_requests"] / n_issues
    out["statuses"] = sorted({r.status for r in server.requests()})
    for key in ("events", "comments", "retries", "rate_limit_waits", "rate_limit_wait_seconds", "graphql_cost"):
        out[key] = counts.get(key, 0)
    server.faults.clear()
    server.reset_log()
    start = time.perf_counter()
    mine_query(engine, client, query, rule, options)
    out["resync_seconds"] = time.perf_counter() - start
    out["resync_requests"] = len(server.requests())
    client.close()
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--apis", default="rest,graphql")
    parser.add_argument("--shared", default=os.environ.get("INTEROP_SHARED_DIR", str(ROOT.parent / "shared")))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--baseline-issues", type=int, default=200)
    args = parser.parse_args()

    server = FakeGitHub(Path(args.shared), tokens=(TOKEN,))
    server.set_rate_limit(10**6)  # the limit that matters is the one injected mid-run, not an hour's sleep
    server.add_repo(REPO)
    events, comments = populate(server, args.issues)
    print(
        f"local server: {args.issues} issues, {events} timeline entries ({comments} comments among them: "
        f"3-30 events and 0-20 comments per issue), label {LABEL!r}; a rate limit and 502s mid-run"
    )
    with ExitStack() as stack:
        stack.enter_context(server)
        if args.baseline_issues:
            base = naive_baseline(server, args.baseline_issues)
            print(f"baseline (naive PyGithub loop, first {args.baseline_issues} issues): {base:.3f} requests/issue")
        for backend in args.backends.split(","):
            results: dict[str, dict[str, Any]] = {}
            for api in args.apis.split(","):
                if backend == "sqlite":
                    tmp = stack.enter_context(tempfile.TemporaryDirectory())
                    url = f"sqlite:///{tmp}/bench-{api}.db"
                else:
                    from tests.support.databases import postgres_problem, scratch_postgres_database

                    problem = postgres_problem()
                    if problem:
                        print(f"{backend}: skipped ({problem})")
                        break
                    url = stack.enter_context(scratch_postgres_database(f"interop_bench_{api}"))
                r = results[api] = bench(url, server, args.issues, api)
                target = " (target <= 0.05)" if api == "graphql" else ""
                print(
                    f"{backend:>10} {api:>7}: full sync {r['full_requests']} requests for {args.issues} issues = "
                    f"{r['full_per_issue']:.4f} requests/issue{target}, {r['full_seconds']:.1f} s wall "
                    f"({r['events']} events, {r['comments']} comments; {r['retries']} retries, "
                    f"{r['rate_limit_waits']} rate-limit waits of {r['rate_limit_wait_seconds']} s; "
                    f"statuses {r['statuses']}); no-change re-sync {r['resync_requests']} request(s) in "
                    f"{r['resync_seconds']:.2f} s (target: 1 per repository)"
                )
            if "rest" in results and "graphql" in results:
                rest, gql = results["rest"], results["graphql"]
                print(
                    f"{backend:>10}   ratio: GraphQL makes {rest['full_requests'] / gql['full_requests']:.0f}x fewer "
                    f"requests than REST and takes {gql['full_seconds'] / rest['full_seconds']:.2f}x its wall time"
                )


if __name__ == "__main__":
    main()
