"""What to fetch from GitHub and how to read it: issue queries, `since=` paging, timelines, raw -> fields.

Pure with respect to the database: the loader decides what is new; this module only turns GitHub JSON
into plain dicts (raw payload kept) and never touches PyGithub objects, so no hidden re-fetches happen.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from miners.github.client import GitHubClient, GitHubError, GitHubResponseError, Page

STATES = ("open", "closed", "all")
_REPO_IN_URL = re.compile(r"/repos/([^/]+/[^/]+?)/?$")


@dataclass(frozen=True)
class IssueQuery:
    """One issue query of one repository: a state, at most one label (GitHub ANDs labels), exclusions."""

    repo: str
    state: str = "all"
    label: str | None = None
    exclude_labels: tuple[str, ...] = field(default_factory=tuple)

    def key(self) -> str:
        """Canonical text naming this query, so each query has its own cursor."""
        return json.dumps(
            {"state": self.state, "label": self.label, "exclude": sorted(self.exclude_labels)}, sort_keys=True
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "state": self.state,
            "label": self.label,
            "exclude_labels": list(self.exclude_labels),
        }


def _key(value: datetime | None) -> datetime:
    return value or datetime.min.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_pull_request(raw: dict[str, Any]) -> bool:
    """The issues endpoint also lists PRs; they carry a `pull_request` object with URLs (old plain issues
    carry one whose URLs are all null)."""
    pr = raw.get("pull_request")
    return isinstance(pr, dict) and any(pr.get(k) for k in ("url", "html_url", "diff_url", "patch_url"))


def label_names(raw: dict[str, Any]) -> list[str]:
    return [lab["name"] if isinstance(lab, dict) else str(lab) for lab in raw.get("labels") or []]


def repo_from_url(url: str | None) -> str | None:
    match = _REPO_IN_URL.search(url or "")
    return match.group(1) if match else None


def issue_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The columns of an `issue` row from GitHub's issue JSON (the JSON itself is kept as `raw`)."""
    user = raw.get("user") or {}
    return {
        "number": int(raw["number"]),
        "title": raw.get("title"),
        "body": raw.get("body"),
        "state": raw.get("state"),
        "state_reason": raw.get("state_reason"),
        "labels": label_names(raw),
        "author": user.get("login") if isinstance(user, dict) else None,
        "created_at": parse_time(raw.get("created_at")),
        "updated_at": parse_time(raw.get("updated_at")),
        "closed_at": parse_time(raw.get("closed_at")),
        "comment_count": raw.get("comments"),
        "html_url": raw.get("html_url"),
        "raw": raw,
    }


def event_key(raw: dict[str, Any]) -> str:
    """A key stable across fetches: node id / id when GitHub gives one, else one built from the content
    (cross-referenced and committed entries have no id)."""
    kind = raw.get("event") or "unknown"
    if raw.get("node_id"):
        return f"node:{raw['node_id']}"
    if raw.get("id") is not None:
        return f"{kind}:{raw['id']}"
    if kind == "cross-referenced":
        src = (raw.get("source") or {}).get("issue") or {}
        return f"xref:{src.get('id') or src.get('url')}@{raw.get('created_at')}"
    if raw.get("sha"):
        return f"{kind}:{raw['sha']}"
    digest = hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:sha1:{digest}"


def event_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The columns of an `issue_event` row from one timeline entry."""
    actor = raw.get("actor") or raw.get("user") or {}
    source = ((raw.get("source") or {}).get("issue") or {}) if raw.get("event") == "cross-referenced" else {}
    source_repo = None
    if source:
        repo_obj = source.get("repository") or {}
        source_repo = repo_obj.get("full_name") or repo_from_url(source.get("repository_url"))
    created = raw.get("created_at") or ((raw.get("author") or {}).get("date") if raw.get("sha") else None)
    return {
        "event_key": event_key(raw)[:100],
        "event": str(raw.get("event") or "unknown")[:64],
        "actor": actor.get("login") if isinstance(actor, dict) else None,
        "commit_id": raw.get("commit_id") or (raw.get("sha") if raw.get("event") == "committed" else None),
        "source_repository": source_repo,
        "source_number": source.get("number") if source else None,
        "source_state": source.get("state") if source else None,
        "source_is_pull_request": is_pull_request(source) if source else None,
        "created_at": parse_time(created),
        "raw": raw,
    }


_ISSUE_IN_URL = re.compile(r"/issues/(\d+)/?$")


def comment_issue_number(raw: dict[str, Any]) -> int:
    """The issue a comment of `GET /repos/{repo}/issues/comments` belongs to (from its `issue_url`)."""
    match = _ISSUE_IN_URL.search(str(raw.get("issue_url") or ""))
    if match is None:
        raise ValueError(f"issue_url {raw.get('issue_url')!r} names no issue")
    return int(match.group(1))


def comment_fields(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The columns of an `issue_comment` row from a `commented` timeline entry (None for other entries) or
    from a comment of the REST comment lists (no `event`): the same row whichever way it came."""
    if raw.get("event", "commented") != "commented":
        return None
    user = raw.get("user") or raw.get("actor") or {}
    github_id = raw.get("id")
    return {
        "comment_key": (f"node:{raw['node_id']}" if raw.get("node_id") else f"id:{github_id}")[:100],
        "github_id": int(github_id) if github_id is not None else None,
        "author": user.get("login") if isinstance(user, dict) else None,
        "author_association": raw.get("author_association"),
        "body": raw.get("body"),
        "created_at": parse_time(raw.get("created_at")),
        "updated_at": parse_time(raw.get("updated_at")),
        "html_url": raw.get("html_url"),
        "raw": raw,
    }


class GitHubIssueSource:
    """Lists a repository's issues (oldest change first, so a cursor can advance safely) and timelines."""

    def __init__(self, client: GitHubClient) -> None:
        self.client = client

    def repository(self, full_name: str) -> dict[str, Any]:
        return self.client.get_object(f"/repos/{full_name}")

    def issue_pages(self, query: IssueQuery, since: datetime | None, etag: str | None = None) -> Iterator[Page]:
        """Pages of issues (and PRs: the caller filters) updated at/after `since`, oldest change first.

        Keyset paging: each next page asks `since=` the newest `updated_at` of the page before instead of
        `page=N+1`, so an issue updated while we page (it moves to the end of the list) cannot shift an
        unseen one onto an already-read page. The overlap (issues sharing that timestamp) comes back again
        and is de-duplicated by the caller. After the first complete run the state filter is applied by
        the caller (state=all on the wire), so an issue that leaves the wanted state is still updated.
        """
        params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": self.client.per_page}
        params["state"] = query.state if since is None else "all"
        if query.label:
            params["labels"] = query.label
        cursor, page_no = since, 1
        while True:
            request = dict(params)
            if cursor is not None:
                request["since"] = iso(cursor)
            if page_no > 1:
                request["page"] = page_no
            page = self.client.get(
                f"/repos/{query.repo}/issues", request, etag=etag if page_no == 1 and cursor == since else None
            )
            if not page.not_modified and not (
                isinstance(page.data, list) and all(isinstance(x, dict) for x in page.data)
            ):
                raise GitHubResponseError(f"expected a JSON list of issues from GET /repos/{query.repo}/issues")
            yield page
            if page.not_modified or not page.next_url or not page.data:
                return
            newest = max((parse_time(x.get("updated_at")) for x in page.data), default=None, key=_key)
            if newest is None or (cursor is not None and newest <= cursor):
                page_no += 1  # more issues share one timestamp than fit on a page: page through that group
            else:
                cursor, page_no = newest, 1

    def comment_pages(self, repo: str, since: datetime | None, etag: str | None = None) -> Iterator[tuple[str, Page]]:
        """(where, page) of every issue comment of the repository updated at/after `since`, oldest change first.

        Keyset paging as in `issue_pages`: the next page asks `since=` the newest `updated_at` seen, so a comment
        edited while we page cannot push an unseen one onto a page already read; the overlap comes back and the
        caller de-duplicates it. `where` names the request in error messages (repository, since, page). `etag`
        makes the first request conditional: an unchanged stream is one 304 (which GitHub does not charge).
        """
        params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": self.client.per_page}
        path = f"/repos/{repo}/issues/comments"
        cursor, page_no = since, 1
        while True:
            request = dict(params)
            if cursor is not None:
                request["since"] = iso(cursor)
            if page_no > 1:
                request["page"] = page_no
            where = f"GET {path} (since {request.get('since', 'the start')}, page {page_no})"
            try:
                page = self.client.get(path, request, etag=etag if page_no == 1 and cursor == since else None)
            except GitHubError as exc:  # say which page: the run stopped there, the cursor before it
                raise type(exc)(f"{exc} ({where}); comments up to there are stored") from None
            if not page.not_modified and not (
                isinstance(page.data, list) and all(isinstance(x, dict) for x in page.data)
            ):
                raise GitHubResponseError(f"expected a JSON list of comments from {where}")
            yield where, page
            if page.not_modified or not page.next_url or not page.data:
                return
            newest = max((parse_time(x.get("updated_at")) for x in page.data), default=None, key=_key)
            if newest is None or (cursor is not None and newest <= cursor):
                page_no += 1  # more comments share one timestamp than fit on a page: page through that group
            else:
                cursor, page_no = newest, 1

    def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every comment of one issue, oldest first (one request per 100 comments)."""
        comments: list[dict[str, Any]] = []
        for page in self.client.pages(f"/repos/{repo}/issues/{number}/comments"):
            comments.extend(page.data)
        return comments

    def timeline(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every timeline entry of one issue (one request per 100 entries)."""
        events: list[dict[str, Any]] = []
        for page in self.client.pages(f"/repos/{repo}/issues/{number}/timeline"):
            events.extend(page.data)
        return events
