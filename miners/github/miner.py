"""One mining run of one issue query: list changed issues since the cursor, fetch their timelines,
commit in batches (the cursor moves with each batch, so a killed run resumes where it stopped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from db import locks
from db.ingest import RunLog
from db.mining import Batch, mine
from db.types import utcnow
from miners.github.client import GitHubClient, GitHubError, GitHubNotFound, GitHubResponseError
from miners.github.fixrule import FixRule
from miners.github.loader import Fetched, IssueLoader, ListedComment
from miners.github.source import (
    GitHubIssueSource,
    IssueQuery,
    comment_fields,
    comment_issue_number,
    is_pull_request,
    issue_fields,
    label_names,
)

TIMELINE_CHOICES = ("all", "closed", "none")
#: The lease every GitHub mining run of a database holds (in `scheduler_lock`, beside the scheduler's own).
LOCK_NAME = "miner:github"


@contextmanager
def mining_lock(
    engine: Engine, wait_seconds: float = 0.0, on_wait: Callable[[locks.Holder | None], None] | None = None
) -> Iterator[str]:
    """Hold the GitHub miner's lease on this database: a second run waits up to `wait_seconds`, then gets
    `locks.LockBusy` naming the holder, instead of fetching everything again and counting the same issues new."""
    with locks.held(engine, LOCK_NAME, wait_seconds=wait_seconds, on_wait=on_wait) as owner:
        yield owner


@dataclass
class MineOptions:
    """How much to fetch: timelines of all / closed / no issues; `full` ignores the cursors; `api` is rest or
    graphql (the same rows either way); `comments`: REST also reads the repository's comment stream."""

    timelines: str = "all"
    batch_size: int = 50
    full: bool = False
    refresh_repo: bool = False
    api: str = "rest"
    comments: bool = True


def _wanted(query: IssueQuery, raw: dict[str, Any]) -> str | None:
    """Why a not-yet-stored issue is skipped (None: keep it)."""
    if query.state != "all" and raw.get("state") != query.state:
        return "skipped_state"
    if set(label_names(raw)) & set(query.exclude_labels):
        return "skipped_excluded"
    return None


def _understood(repo: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The issue's fields, or a GitHubResponseError: the cursor must not move past an item it cannot read."""
    try:
        return issue_fields(raw)
    except (KeyError, TypeError, ValueError) as exc:
        number = raw.get("number", "without a number")
        where = f"GET /repos/{repo}/issues"
        raise GitHubResponseError(f"issue {number} listed by {where} cannot be read ({exc!r})") from exc


def mine_query(
    engine: Engine,
    client: GitHubClient,
    query: IssueQuery,
    rule: FixRule,
    options: MineOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mine one query into the store, recorded as an `ingest_run` of kind github-mine; returns its counts."""
    miner_class: type[GitHubMiner] = GitHubMiner
    if options is not None and options.api == "graphql":
        from miners.github.graphql_miner import GraphQLMiner

        miner_class = GraphQLMiner
    run = mine(engine, miner_class(engine, client, query, rule, options, on_progress, parameters))
    return dict(run.counts)


@dataclass(frozen=True)
class Position:
    """The issue query's cursor: every issue updated up to `since` is stored; `etag` of an unchanged listing."""

    since: datetime | None
    etag: str | None = None
    completed: bool | None = None  # True once a fetch went through to the end


class GitHubMiner:
    """The `db.mining.Miner` of one issue query: pages of changed issues (and their timelines) in batches."""

    kind = "github-mine"

    def __init__(
        self,
        engine: Engine,
        client: GitHubClient,
        query: IssueQuery,
        rule: FixRule,
        options: MineOptions | None = None,
        on_progress: Callable[[int], None] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.client, self.query, self.rule = client, query, rule
        self.options = options or MineOptions()
        self.on_progress = on_progress
        self.extra = parameters or {}
        self.source = GitHubIssueSource(client)
        self.loader = IssueLoader(engine, rule)
        self.repo_id = 0

    def parameters(self) -> dict[str, Any]:
        return {
            **self.query.as_dict(),
            "timelines": self.options.timelines,
            "full": self.options.full,
            "api": self.options.api,
            "comments": self.options.comments and self.options.api == "rest",
            "rule_version": self.rule.version,
            **self.extra,
        }

    @contextmanager
    def opened(self, run: RunLog) -> Iterator[None]:
        """The client's requests, retries and waits during the run are added to its counts, however it ends."""
        start = self.client.stats.__dict__.copy()
        for key in COUNTS:
            run.counts.setdefault(key, 0)
        try:
            yield
        finally:
            for key in ("requests", "retries", "rate_limit_waits", "not_modified", "token_switches", "graphql_cost"):
                run.counts[key] = getattr(self.client.stats, key) - start[key]
            run.counts["rate_limit_wait_seconds"] = round(self.client.stats.waited_seconds - start["waited_seconds"], 1)

    def load(self, batch: Batch[Any, Any], run: RunLog) -> None:
        if batch.context == COMMENT_STREAM:
            since, etag = batch.cursor or (None, None)
            result = self.loader.write_comments(
                self.repo_id, [(c.issue_id, c.fields) for c in batch.items], since, etag
            )
        elif isinstance(batch.context, tuple) and batch.context[0] == COMMENT_LISTING:
            _, number, listed_at = batch.context
            result = {"comments_deleted": self.loader.write_listing(self.repo_id, number, batch.items, listed_at)}
        else:
            result = self._load_issues(batch)
        for key, value in result.items():
            run.counts[key] = run.counts.get(key, 0) + value

    def _load_issues(self, batch: Batch[Fetched, Position]) -> dict[str, int]:
        cursor = batch.cursor or Position(None)
        return self.loader.write_batch(
            self.repo_id, self.query.repo, self.query, batch.items, cursor.since, cursor.etag, cursor.completed
        )

    def fetch(self, run: RunLog) -> Iterator[Batch[Any, Any]]:
        """Issues changed since the cursor, oldest change first, with their timelines; a batch every
        `batch_size` issues. A GitHub error or Ctrl-C first yields what was fully fetched, then ends the run."""
        query, options, loader, source, counts = self.query, self.options, self.loader, self.source, run.counts
        loader.register_rule()
        repo_id, has_meta = loader.repository(query.repo)
        if repo_id is None or not has_meta or options.refresh_repo:
            # fetched before anything is written: an unknown repository leaves no row behind
            repo_id = loader.store_repository(query.repo, source.repository(query.repo))
        self.repo_id = repo_id
        cursor = loader.cursor(repo_id, query)
        since = None if options.full else cursor.since
        etag = cursor.etag if since is not None else None
        batch: list[Fetched] = []
        high: datetime | None = since  # newest updated_at examined; everything up to it is handled
        first_etag: str | None = None
        not_modified = False
        handled: dict[int, datetime | None] = {}

        def needs_timeline(state: str | None) -> bool:
            return options.timelines == "all" or (options.timelines == "closed" and state == "closed")

        try:
            for index, page in enumerate(source.issue_pages(query, since, etag)):
                if page.not_modified:
                    not_modified = True
                    break
                if index == 0:
                    first_etag = page.etag
                known = loader.known(repo_id, [int(r["number"]) for r in page.data if "number" in r])
                for raw in page.data:
                    fields = _understood(query.repo, raw)
                    upd = fields["updated_at"]
                    if handled.get(fields["number"]) == upd:
                        continue  # the overlap of keyset paging: already handled in this run
                    handled[fields["number"]] = upd
                    counts["issues_seen"] += 1
                    if self.on_progress:
                        self.on_progress(1)
                    if is_pull_request(raw):
                        counts["prs_skipped"] += 1
                        high = max(high, upd) if high and upd else (upd or high)
                        continue
                    have = known.get(fields["number"])
                    want_tl = needs_timeline(fields["state"])
                    if (
                        have is not None
                        and have.updated_at == fields["updated_at"]
                        and (not want_tl or have.timeline_fetched_at is not None)
                    ):
                        counts["issues_unchanged"] += 1
                    elif have is None and (why := _wanted(query, raw)):
                        counts[why] += 1
                    else:
                        timeline, gone = None, False
                        if want_tl:
                            try:
                                timeline = source.timeline(query.repo, fields["number"])
                            except GitHubNotFound:  # deleted or transferred since it was listed: not retried
                                timeline, gone = [], True  # until the issue changes again
                                counts["timelines_missing"] += 1
                        batch.append(Fetched(fields, timeline, utcnow(), gone))
                    high = max(high, upd) if high and upd else (upd or high)
                    if len(batch) >= options.batch_size:
                        yield Batch(batch, Position(high))
                        batch = []
        except (GitHubError, KeyboardInterrupt):
            if batch:  # everything fully fetched so far is kept; the cursor covers exactly that
                yield Batch(batch, Position(high))
            raise
        # A run that changed nothing keeps the first page's ETag, so the next identical query can be a 304.
        unchanged_run = since is not None and high == since and not batch
        keep = (etag if not_modified else first_etag) if unchanged_run else None
        yield Batch(batch, Position(high, keep, completed=True), final=not options.comments)
        if options.comments:
            yield from self.comment_stream(run)
            yield from self.relisted_comments(run)

    def comment_stream(self, run: RunLog) -> Iterator[Batch[ListedComment, tuple[datetime | None, str | None]]]:
        """The repository's comments changed since the stream's own cursor, oldest change first, a batch a page.

        Comments of stored issues (mined or known only by URL) are kept; those of pull requests and of issues
        not stored are skipped (an issue stored later is listed whole when its count disagrees, see
        `relisted_comments`). A comment that cannot be read ends the run with one line naming the repository
        and page, after the comments before it are stored: the cursor never passes it."""
        repo, counts = self.query.repo, run.counts
        since, etag = (None, None) if self.options.full else self.loader.comment_cursor(self.repo_id)
        etag = etag if since is not None else None
        high = since
        handled: set[tuple[int, str | None]] = set()
        first_etag: str | None = None
        for where, page in self.source.comment_pages(repo, since, etag):
            if page.not_modified:
                yield Batch([], (since, etag), context=COMMENT_STREAM)  # still unchanged: keep the ETag
                return
            first_etag = first_etag or page.etag or ""
            wanted: list[tuple[int, dict[str, Any]]] = []
            for raw in page.data:
                try:
                    number = comment_issue_number(raw)
                    row = comment_fields(raw)
                    if row is None or row["updated_at"] is None or row["github_id"] is None:
                        raise ValueError("no id or updated_at")
                except (KeyError, TypeError, ValueError) as exc:
                    yield self._comment_batch(wanted, high, counts)  # what came before it is kept
                    raise GitHubResponseError(
                        f"comment {raw.get('id', 'without an id')} of {repo} from {where} cannot be read ({exc!r})"
                    ) from exc
                seen = (int(row["github_id"]), raw.get("updated_at"))
                if seen in handled:
                    continue  # the overlap of keyset paging
                handled.add(seen)
                counts["comments_seen"] += 1
                wanted.append((number, row))
                high = max(high, row["updated_at"]) if high else row["updated_at"]
            yield self._comment_batch(wanted, high, counts)
        if since is not None and high == since:  # nothing newer than the cursor: the next run may get a 304
            yield Batch([], (high, first_etag or None), context=COMMENT_STREAM)

    def _comment_batch(
        self, wanted: list[tuple[int, dict[str, Any]]], high: datetime | None, counts: dict[str, Any]
    ) -> Batch[ListedComment, tuple[datetime | None, str | None]]:
        ids = self.loader.issue_ids(self.repo_id, [n for n, _ in wanted])
        items = [ListedComment(ids[n], r) for n, r in wanted if n in ids]
        counts["comments_skipped"] += len(wanted) - len(items)
        return Batch(items, (high, None), context=COMMENT_STREAM)

    def relisted_comments(self, run: RunLog) -> Iterator[Batch[dict[str, Any], None]]:
        """Every comment of each issue whose comment count disagrees with the live comments stored since its
        payload changed (`IssueLoader.issues_to_relist`): what the list lacks was deleted on GitHub."""
        for number in self.loader.issues_to_relist(self.repo_id):
            listed_at = utcnow()
            try:
                comments = self.source.issue_comments(self.query.repo, number)
            except GitHubNotFound:  # deleted or transferred since it was listed: left as stored
                run.counts["comments_relist_missing"] += 1
                continue
            for raw in comments:
                try:
                    if comment_fields(raw) is None:
                        raise ValueError("not a comment")
                except (KeyError, TypeError, ValueError) as exc:
                    raise GitHubResponseError(
                        f"comment {raw.get('id', 'without an id')} listed by GET /repos/{self.query.repo}/issues/"
                        f"{number}/comments cannot be read ({exc!r})"
                    ) from exc
            run.counts["comments_relisted"] += 1
            yield Batch(comments, None, context=(COMMENT_LISTING, number, listed_at))


COUNTS = (
    "issues_seen",
    "issues_new",
    "issues_updated",
    "issues_unchanged",
    "prs_skipped",
    "skipped_state",
    "skipped_excluded",
    "timelines",
    "timelines_missing",
    "events",
    "comments",
    "comments_seen",
    "comments_stored",
    "comments_skipped",
    "comments_deleted",
    "comments_relisted",
    "comments_relist_missing",
)
#: Batch contexts of the comment passes (issue batches have none).
COMMENT_STREAM = "comments"
COMMENT_LISTING = "comment-listing"
