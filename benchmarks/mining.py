"""Requests per issue and ingest speed of the GitHub miner against the local GitHub-like server.

Usage: python -m benchmarks.mining [--issues 2000] [--shared ../shared] [--backends sqlite,postgresql]

Prints, per backend: the full sync (requests per stored issue, issues/s), a no-change re-sync (target:
exactly 1 request per label query) and a second one (answered 304 thanks to the stored ETag), plus, as a
baseline measured in the same run, a naive PyGithub loop (`repo.get_issues()` + `issue.pull_request` +
`issue.get_timeline()`) on a subset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from miners.github.client import GitHubClient  # noqa: E402
from miners.github.fixrule import load_rule  # noqa: E402
from miners.github.miner import mine_query  # noqa: E402
from miners.github.source import IssueQuery  # noqa: E402
from tests.support.github_server import FakeGitHub  # noqa: E402

TOKEN = "bench-token"
REPO = "pytorch/pytorch"
LABEL = "module: onnx"


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


def bench(url: str, server: FakeGitHub, n_issues: int) -> dict[str, float]:
    upgrade(url)
    engine = make_engine(url)
    client = GitHubClient([TOKEN], server.url, min_interval=0)
    query = IssueQuery(REPO, state="all", label=LABEL)
    rule = load_rule()
    out: dict[str, float] = {}
    server.reset_log()
    start = time.perf_counter()
    counts = mine_query(engine, client, query, rule)
    seconds = time.perf_counter() - start
    stored = counts["issues_new"]
    assert stored == n_issues, counts
    out["full_requests"] = len(server.requests())
    out["full_per_issue"] = len(server.requests()) / stored
    out["issues_per_s"] = stored / seconds
    out["full_seconds"] = seconds
    out["events"] = counts["events"]
    for label in ("resync1", "resync2"):
        server.reset_log()
        counts = mine_query(engine, client, query, rule)
        out[f"{label}_requests"] = len(server.requests())
        out[f"{label}_statuses"] = ",".join(str(r.status) for r in server.requests())  # type: ignore[assignment]
    client.close()
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=2000)
    parser.add_argument("--prs", type=int, default=0, help="PRs mixed into the list (skipped, never stored)")
    parser.add_argument("--shared", default=os.environ.get("INTEROP_SHARED_DIR", str(ROOT.parent / "shared")))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--baseline-issues", type=int, default=200)
    args = parser.parse_args()

    server = FakeGitHub(Path(args.shared), tokens=(TOKEN,))
    server.add_repo(REPO)
    total = args.issues + args.prs
    pr_every = total // args.prs if args.prs else 0
    server.populate(REPO, total, pr_every=pr_every, labels=(LABEL,), events_per_issue=6)
    n_issues = sum(1 for i in server.repos[REPO].issues.values() if "pull_request" not in i)
    print(f"local server: {n_issues} issues + {total - n_issues} PRs, 6 timeline events each, label {LABEL!r}")
    with ExitStack() as stack:
        stack.enter_context(server)
        base = naive_baseline(server, args.baseline_issues)
        print(f"baseline (naive PyGithub loop, first {args.baseline_issues} issues): {base:.3f} requests/issue")
        for backend in args.backends.split(","):
            if backend == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
                url = f"sqlite:///{tmp}/bench.db"
            else:
                from tests.support.databases import postgres_problem, scratch_postgres_database

                problem = postgres_problem()
                if problem:
                    print(f"{backend}: skipped ({problem})")
                    continue
                url = stack.enter_context(scratch_postgres_database("interop_bench"))
            r = bench(url, server, n_issues)
            print(
                f"{backend:>10}: full sync {r['full_requests']:.0f} requests for {n_issues} issues = "
                f"{r['full_per_issue']:.4f} requests/issue (target <= 1.05; {base / r['full_per_issue']:.2f}x fewer "
                f"than baseline), {r['issues_per_s']:.0f} issues/s ({r['full_seconds']:.1f} s, {r['events']:.0f} "
                f"events); no-change re-sync {r['resync1_requests']:.0f} request(s) "
                f"= {r['resync1_requests'] / n_issues:.4f} requests/issue [{r['resync1_statuses']}], "
                f"again {r['resync2_requests']:.0f} [{r['resync2_statuses']}] (target: exactly 1 per label query)"
            )


if __name__ == "__main__":
    main()
