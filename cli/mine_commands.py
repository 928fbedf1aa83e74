"""`interop mine …`: run the miners (GitHub issues) from the command line or interop.toml."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import typer

from cli.common import console, engine
from db.errors import InteropError
from db.locks import BUSY_EXIT_CODE
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION

app = typer.Typer(help="Mine data sources into the store.", no_args_is_help=True)

ENTRY_KEYS = {"repo", "label", "labels", "exclude_labels", "state", "timelines", "api"}


def _entries_from_toml() -> list[dict[str, Any]]:
    """The `[[miners.github]]` entries of interop.toml, checked field by field."""
    from db.config import load_toml

    entries = (load_toml().get("miners") or {}).get("github") or []
    if not isinstance(entries, list) or not entries:
        raise InteropError("interop.toml has no [[miners.github]] entries (needed by --all)")
    for i, entry in enumerate(entries, 1):
        where = f"interop.toml [[miners.github]] entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("repo"), str) or "/" not in entry["repo"]:
            raise InteropError(f'{where}: `repo = "owner/name"` is required')
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise InteropError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return entries


def _queries(repo: str, labels: list[str], exclude: list[str], state: str) -> list[Any]:
    from miners.github.source import STATES, IssueQuery

    if "/" not in repo or repo.count("/") != 1:
        raise InteropError(f"--repo must be owner/name, got {repo!r}")
    if state not in STATES:
        raise InteropError(f"--state must be one of {', '.join(STATES)}, got {state!r}")
    return [IssueQuery(repo, state, label, tuple(exclude)) for label in (labels or [None])]


@app.command("github")
def github(
    repo: str | None = typer.Option(None, "--repo", help="owner/name, e.g. pytorch/pytorch."),
    label: list[str] = typer.Option(
        [],
        "--label",
        help="Only issues with this label; repeat for several queries (each label is one query, results are unioned).",
    ),
    exclude_label: list[str] = typer.Option([], "--exclude-label", help="Skip issues carrying this label."),
    state: Literal["open", "closed", "all"] = typer.Option("all", "--state", help="Issues in this state."),
    all_entries: bool = typer.Option(False, "--all", help="Run every \\[\\[miners.github]] entry of interop.toml."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="API base URL (GitHub Enterprise, a test server); default INTEROP_GITHUB_BASE_URL."
    ),
    timelines: Literal["all", "closed", "none"] = typer.Option(
        "all", "--timelines", help="Fetch timelines of all, closed or none of the changed issues."
    ),
    full: bool = typer.Option(
        False, "--full", help="Ignore the cursor: list every issue again (still only changed issues are re-fetched)."
    ),
    rule_version: str = typer.Option(
        DEFAULT_FIX_RULE_VERSION, "--rule-version", help="Fix rule evaluated on new timelines."
    ),
    batch_size: int = typer.Option(50, "--batch-size", min=1, help="Issues per committed batch."),
    refresh_repo: bool = typer.Option(False, "--refresh-repo", help="Re-fetch the repository's metadata."),
    comments: bool = typer.Option(
        True,
        "--comments/--no-comments",
        help="REST: also read the repository's comment stream (issues/comments?since=, its own cursor): new and "
        "edited comments of every stored issue; an issue whose comment count changed is listed whole and the "
        "comments it lacks are marked deleted.",
    ),
    api: Literal["graphql", "rest"] | None = typer.Option(
        None,
        "--api",
        help="GitHub API to mine with: graphql (about 1 request per 100 issues, timelines and comments included; "
        "the default when a token is set) or rest (1 request per issue); default INTEROP_GITHUB_API.",
    ),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0,
        help="Seconds to wait when another mining run holds this database's miner lock (default: do not wait; "
        f"exit {BUSY_EXIT_CODE} naming the holder).",
    ),
) -> None:
    """Mine GitHub issues with their timelines, incrementally (only what changed since the last run)."""
    from db.config import get_settings, load_toml
    from miners.github.client import split_tokens
    from miners.github.fixrule import load_rule
    from miners.github.miner import TIMELINE_CHOICES

    if all_entries == bool(repo):
        raise InteropError("give either --repo owner/name or --all")
    if timelines not in TIMELINE_CHOICES:
        raise InteropError(f"--timelines must be one of {', '.join(TIMELINE_CHOICES)}")
    plan: list[tuple[Any, str, str | None]] = []
    if all_entries:
        for entry in _entries_from_toml():
            labels = entry.get("labels") or ([entry["label"]] if entry.get("label") else [])
            for q in _queries(
                entry["repo"], list(labels), list(entry.get("exclude_labels") or []), entry.get("state", "all")
            ):
                plan.append((q, entry.get("timelines", timelines), entry.get("api")))
    else:
        plan = [(q, timelines, None) for q in _queries(repo or "", label, exclude_label, state)]
    settings = get_settings()
    rule = load_rule(rule_version, load_toml().get("fix_rules") or {})
    tokens = split_tokens(settings.github_token.get_secret_value() if settings.github_token else None)
    if not tokens:
        console.print("no INTEROP_GITHUB_TOKEN: anonymous requests (60 per hour on github.com)", style="yellow")
    plan = [(q, tl, _api(entry_api or api or settings.github_api, tokens)) for q, tl, entry_api in plan]
    url = base_url or settings.github_base_url
    eng = engine()
    with _miner_lock(eng, wait):
        _mine_plan(
            eng,
            plan,
            tokens,
            url,
            settings,
            rule,
            {"batch_size": batch_size, "full": full, "refresh_repo": refresh_repo, "comments": comments},
        )


def _api(choice: str, tokens: list[str]) -> str:
    """graphql or rest; `auto` is graphql when a token is set (GitHub's GraphQL API refuses anonymous use)."""
    if choice not in ("auto", "graphql", "rest"):
        raise InteropError(f"INTEROP_GITHUB_API must be auto, graphql or rest, got {choice!r}")
    if choice == "auto":
        return "graphql" if tokens else "rest"
    if choice == "graphql" and not tokens:
        raise InteropError(
            "--api graphql needs a token (INTEROP_GITHUB_TOKEN): GitHub's GraphQL API refuses anonymous use"
        )
    return choice


@contextmanager
def _miner_lock(eng: Any, wait: float) -> Iterator[None]:
    """The database's GitHub miner lease, held for the whole plan; a busy one is one error line (exit 75)."""
    from db.locks import LockBusy
    from miners.github.miner import mining_lock

    def waiting(holder: Any) -> None:
        who = holder.describe() if holder else "another run"
        console.print(f"waiting up to {wait:g}s for the GitHub miner lock, held by {who}", style="yellow", markup=False)

    try:
        with mining_lock(eng, wait, on_wait=waiting):
            yield
    except LockBusy as exc:
        who = exc.holder.describe() if exc.holder else "another run"
        hint = "try again later" + ("" if wait else " or pass --wait SECONDS")
        raise InteropError(
            f"another `interop mine github` run is mining this database: {who}; {hint}", exit_code=BUSY_EXIT_CODE
        ) from None


def _mine_plan(
    eng: Any,
    plan: list[tuple[Any, str, str | None]],
    tokens: list[str],
    url: str,
    settings: Any,
    rule: Any,
    opts: dict[str, Any],
) -> None:
    """Every query of the plan with one client (its quota and retry budget shared)."""
    from miners.github.client import GitHubClient
    from miners.github.miner import MineOptions

    client = GitHubClient(
        tokens,
        url,
        min_interval=settings.github_min_request_interval,
        max_wait=settings.github_max_wait,
        notify=lambda msg: console.print(msg, style="yellow", markup=False),
    )
    try:
        for query, tl, api in plan:
            _run_one(
                eng,
                client,
                query,
                rule,
                MineOptions(timelines=tl, api=api or "rest", **opts),
                url,
            )
    finally:
        client.close()


def _run_one(eng: Any, client: Any, query: Any, rule: Any, options: Any, url: str) -> None:
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from miners.github.client import safe_url
    from miners.github.miner import mine_query

    title = f"{query.repo}" + (f" [{query.label}]" if query.label else "") + f" state={query.state} ({options.api})"
    params = {"base_url": safe_url(url)}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} issues listed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(escape(f"mining {title}"), total=None)
        counts = mine_query(
            eng, client, query, rule, options, on_progress=lambda n: bar.advance(task, n), parameters=params
        )
    stored = counts["issues_new"] + counts["issues_updated"]
    per = f" ({counts['requests'] / stored:.2f} requests per stored issue)" if stored else ""
    line = (
        f"{title}: {counts['issues_new']} new, {counts['issues_updated']} updated, "
        f"{counts['issues_unchanged']} unchanged, {counts['prs_skipped']} PRs skipped, "
        f"{counts['skipped_state'] + counts['skipped_excluded']} filtered, {counts['timelines']} timelines, "
        f"{counts['events']} events, {counts['comments'] + counts['comments_stored']} comments stored "
        f"({counts['comments_deleted']} marked deleted); {counts['requests']} requests{per}, "
        f"{counts['rate_limit_waits']} rate-limit waits"
    )
    console.print(line, markup=False)


@app.command("repos")
def repos(
    list_file: Path | None = typer.Option(
        None,
        "--list",
        help="TOML file with a \\[repos] table (role = \\[owner/name, …]); default: the ONNX ecosystem list "
        "in miners/github/ecosystem.toml.",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="API base URL (GitHub Enterprise, a test server); default INTEROP_GITHUB_BASE_URL."
    ),
    batch_size: int = typer.Option(10, "--batch-size", min=1, max=20, help="Repositories per GraphQL request."),
) -> None:
    """Snapshot the ecosystem's repositories (stars, forks, open issues/PRs, releases, ONNX mentions); every run
    stores a dated snapshot per repository."""
    from db.config import get_settings
    from miners.github.client import GitHubClient, safe_url, split_tokens
    from miners.github.ecosystem import load_list, snapshot_repos

    listed = load_list(list_file)
    settings = get_settings()
    tokens = split_tokens(settings.github_token.get_secret_value() if settings.github_token else None)
    if not tokens:
        raise InteropError(
            "`interop mine repos` needs a token (INTEROP_GITHUB_TOKEN): GitHub's GraphQL API refuses anonymous use"
        )
    url = base_url or settings.github_base_url
    client = GitHubClient(
        tokens,
        url,
        min_interval=settings.github_min_request_interval,
        max_wait=settings.github_max_wait,
        notify=lambda msg: console.print(msg, style="yellow", markup=False),
    )
    params = {"list": str(list_file) if list_file else "default", "base_url": safe_url(url)}
    try:
        run = snapshot_repos(engine(), client, listed, batch_size, params)
    finally:
        client.close()
    counts = run.counts
    console.print(
        f"run {run.id}: {counts['repos_found']} repositories snapshotted ({counts['repos_onnx']} naming ONNX), "
        f"{counts['repos_not_found']} not found; {counts['requests']} requests",
        markup=False,
    )
    missing = run.parameters.get("not_found") or []
    if missing:
        console.print(f"not found on GitHub: {', '.join(missing)}", style="yellow", markup=False)
