"""The GitHub issue miner over GraphQL: pages of up to 100 changed issues with labels, timelines and comments.

A second backend of the `db.mining.Miner` contract beside the REST `GitHubMiner`, writing the same rows
through the same loader: a repository of N issues costs about N/100 requests (plus one per 20 issues whose
timeline outgrows its first 100 items), a no-change re-sync one request. The cursor is the newest
`updated_at` of the pages committed (issues come oldest change first via `filterBy: {since}`), so a killed
run resumes at the page it was on, and ties at that instant are recognised as unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from db.ingest import RunLog
from db.mining import Batch
from db.types import utcnow
from miners.github.client import GitHubError, GitHubNotFound, GitHubResponseError
from miners.github.graphql import (
    ISSUE_PAGE,
    event_json,
    issue_json,
    repository_json,
    split_repo,
    timeline_pages_query,
)
from miners.github.loader import Fetched
from miners.github.miner import GitHubMiner, Position, _wanted
from miners.github.source import iso, issue_fields

PAGE_SIZE = 100  # GitHub's maximum `first`
MIN_PAGE_SIZE = 10
NESTED_PER_REQUEST = 20  # issues whose further timeline pages one follow-up query asks for


def _cursor_text(after: str | None) -> str:
    return f"cursor {after}" if after else "the first page"


class GraphQLMiner(GitHubMiner):
    """The issue query of `GitHubMiner`, fetched with GraphQL (same counts, cursor and tables)."""

    page_size = PAGE_SIZE

    def fetch(self, run: RunLog) -> Iterator[Batch[Any, Any]]:
        """Pages of issues changed since the cursor, each complete with its timeline before it is batched; a
        GitHub error or Ctrl-C first yields the complete pages fetched, then ends the run."""
        query, options, loader, counts = self.query, self.options, self.loader, run.counts
        loader.register_rule()
        repo_id, has_meta = loader.repository(query.repo)
        need_repo = repo_id is None or not has_meta or options.refresh_repo
        cursor = loader.cursor(repo_id, query) if repo_id is not None else None
        since = None if options.full or cursor is None else cursor.since
        owner, name = split_repo(query.repo)
        variables: dict[str, Any] = {
            "owner": owner,
            "name": name,
            "since": iso(since) if since else None,
            "states": [query.state.upper()] if since is None and query.state != "all" else None,
            "labels": [query.label] if query.label else None,
            "timeline": 1 if options.timelines == "none" else 100,
        }
        batch: list[Fetched] = []
        high: datetime | None = since
        handled: dict[int, datetime | None] = {}
        after: str | None = None
        size = self.page_size
        per_issue: float | None = None  # points per issue, as GitHub charged the largest page so far
        basis = 0  # that page's size (a small page is overcharged: every query costs at least 1 point)

        def shrink(current: dict[str, Any]) -> dict[str, Any]:
            """A retried page asks for half as many issues (GitHub times out on heavy pages)."""
            nonlocal size
            size = max(MIN_PAGE_SIZE, current["first"] // 2)
            return {**current, "first": size}

        def needs_timeline(state: str | None) -> bool:
            return options.timelines == "all" or (options.timelines == "closed" and state == "closed")

        try:
            while True:
                what = f"GraphQL issues of {query.repo} at {_cursor_text(after)}"
                size, cost = self._fit_budget(size, per_issue)
                answer = self.client.graphql(
                    ISSUE_PAGE,
                    {**variables, "first": size, "after": after, "withRepo": need_repo},
                    what,
                    shrink,
                    cost=cost,
                )
                if answer.cost is not None and size >= basis:
                    per_issue, basis = answer.cost / size, size
                repository = answer.data.get("repository")
                if not isinstance(repository, dict):
                    raise GitHubNotFound(f"not found on GitHub: repository {query.repo}")
                if need_repo:  # only once GitHub answered: an unknown repository leaves no row behind
                    repo_id = loader.store_repository(query.repo, repository_json(repository))
                    need_repo = False
                self.repo_id = int(repo_id or 0)
                issues = repository.get("issues") or {}
                nodes = [n for n in issues.get("nodes") or [] if isinstance(n, dict)]
                page: list[Fetched] = []
                more: list[tuple[Fetched, dict[str, Any]]] = []  # issues whose timeline has further pages
                known = loader.known(self.repo_id, [int(n["number"]) for n in nodes if "number" in n])
                for node in nodes:
                    raw, timeline = self._understood(node, what)
                    fields = issue_fields(raw)
                    upd = fields["updated_at"]
                    if handled.get(fields["number"]) == upd:
                        continue
                    handled[fields["number"]] = upd
                    counts["issues_seen"] += 1
                    if self.on_progress:
                        self.on_progress(1)
                    have = known.get(fields["number"])
                    want_tl = needs_timeline(fields["state"])
                    if (
                        have is not None
                        and have.updated_at == upd
                        and (not want_tl or have.timeline_fetched_at is not None)
                    ):
                        counts["issues_unchanged"] += 1
                    elif have is None and (why := _wanted(query, raw)):
                        counts[why] += 1
                    else:
                        item = Fetched(
                            fields, [event_json(e) for e in timeline["nodes"]] if want_tl else None, utcnow()
                        )
                        page.append(item)
                        if want_tl and timeline["pageInfo"]["hasNextPage"]:
                            more.append((item, {"id": node["id"], "after": timeline["pageInfo"]["endCursor"]}))
                    high = max(high, upd) if high and upd else (upd or high)
                self._rest_of_timelines(more, what)
                batch.extend(page)
                info = issues.get("pageInfo") or {}
                if not info.get("hasNextPage"):
                    break
                after = info.get("endCursor")
                size = min(self.page_size, size * 2)  # grow back after a shrunk page went through
                if len(batch) >= options.batch_size:
                    yield Batch(batch, Position(high))
                    batch = []
        except (GitHubError, KeyboardInterrupt):
            if batch:  # the complete pages fetched so far are kept; the cursor covers exactly those
                yield Batch(batch, Position(high))
            raise
        yield Batch(batch, Position(high, None, completed=True), final=True)

    def _fit_budget(self, size: int, per_issue: float | None) -> tuple[int, int | None]:
        """The page size the points left can pay for, and its expected cost: a smaller page spends the last
        points of the window instead of waiting for its reset with a full page's worth unused."""
        if per_issue is None or per_issue <= 0:
            return size, None
        left = self.client.graphql_points_left()
        expected = max(1, math.ceil(per_issue * size))
        if left is None or expected <= left:
            return size, expected
        fit = min(size, int(left / per_issue))
        if fit < MIN_PAGE_SIZE:  # not worth a page: the client waits for the reset, then a full page goes
            return size, expected
        if fit < size:
            self.client.notify(f"{left} GraphQL point(s) left before the reset: asking for {fit} issues, not {size}")
        return fit, max(1, math.ceil(per_issue * fit))

    def _understood(self, node: dict[str, Any], what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The issue in REST's shape and its timeline connection, or one error line naming where it came from."""
        try:
            raw = issue_json(node)
            issue_fields(raw)
            timeline = node["timelineItems"]
            if not isinstance(timeline.get("nodes"), list):
                raise TypeError("timelineItems without nodes")
            if "hasNextPage" not in timeline["pageInfo"]:
                raise KeyError("timelineItems.pageInfo.hasNextPage")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            number = node.get("number", "without a number")
            raise GitHubResponseError(f"issue {number} in {what} cannot be read ({exc!r})") from exc
        return raw, timeline

    def _rest_of_timelines(self, more: list[tuple[Fetched, dict[str, Any]]], what: str) -> None:
        """Follow each long timeline to its end, up to `NESTED_PER_REQUEST` issues per request."""
        while more:
            group, more = more[:NESTED_PER_REQUEST], more[NESTED_PER_REQUEST:]
            variables: dict[str, Any] = {}
            for k, (_, where) in enumerate(group):
                variables[f"id{k}"], variables[f"after{k}"] = where["id"], where["after"]
            numbers = ", ".join(f"#{f.fields['number']}" for f, _ in group)
            answer = self.client.graphql(
                timeline_pages_query(len(group)), variables, f"timelines of {numbers} ({what})"
            )
            for k, (item, where) in enumerate(group):
                try:
                    connection = answer.data[f"i{k}"]["timelineItems"]
                    item.timeline.extend(event_json(e) for e in connection["nodes"])  # type: ignore[union-attr]
                    info = connection["pageInfo"]
                except (KeyError, TypeError) as exc:
                    raise GitHubResponseError(
                        f"timeline of issue #{item.fields['number']} in {what} cannot be read ({exc!r})"
                    ) from exc
                if info.get("hasNextPage"):
                    more.append((item, {"id": where["id"], "after": info.get("endCursor")}))
