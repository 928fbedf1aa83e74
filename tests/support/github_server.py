"""A local GitHub-like REST and GraphQL server for tests and benchmarks (127.0.0.1, ephemeral port).

Payload shapes come from PyGithub's real recorded exchanges in ../shared/data/github-replay/; more
issues and timeline events are generated from those shapes. It pages with `Link` headers, filters by
state/labels/since, sorts, sends rate-limit headers and ETags, and can inject faults (5xx, malformed
JSON, primary/secondary rate limits, delays) so the miner's error handling is exercised for real. POST
/graphql answers the GraphQL miner's queries from the same data (tests/support/github_graphql.py).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.github_graphql import GraphQLSide

REPLAY = ("data", "github-replay")
CONTENT_LENGTH = "x-test-content-length"  # internal: the Content-Length to declare instead of the body's
DROP_CONNECTION = "x-test-drop-connection"  # internal: close the socket right after the (short) body


@dataclass
class Exchange:
    """One recorded HTTP exchange of a PyGithub replay file."""

    verb: str
    path: str
    status: int
    headers: dict[str, str]
    body: str


def load_replay(path: Path) -> list[Exchange]:
    """Parse a replay file: blocks of protocol, verb, host, port, path, request headers, request body,
    status, response headers, response body, then a blank line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out: list[Exchange] = []
    i = 0
    while i + 10 <= len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block = lines[i : i + 10]
        headers = {k.lower(): v for k, v in ast.literal_eval(block[8])}
        out.append(Exchange(block[1], block[4], int(block[7]), headers, block[9]))
        i += 11
    return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Templates:
    """Real payload shapes: an issue, a repository, timeline entries by type, rate-limit error bodies."""

    def __init__(self, shared_dir: Path) -> None:
        base = shared_dir.joinpath(*REPLAY)
        issues = json.loads(load_replay(base / "Repository.testGetIssues.txt")[0].body)
        self.issue: dict[str, Any] = issues[0]
        self.repository: dict[str, Any] = json.loads(load_replay(base / "Repository.setUp.txt")[0].body)
        timeline = json.loads(load_replay(base / "Issue.testGetTimeline.txt")[0].body)
        self.events: dict[str, dict[str, Any]] = {}
        for entry in timeline:
            self.events.setdefault(entry["event"], entry)
        repo_events = json.loads(load_replay(base / "Repository.testGetIssuesEvents.txt")[0].body)
        referenced = next(e for e in repo_events if e["event"] == "referenced")
        self.events["referenced"] = {k: v for k, v in referenced.items() if k != "issue"}
        primary = load_replay(base / "SpecificExceptions.testRateLimitExceeded.txt")[1]
        self.primary_limit_body = primary.body
        secondary = load_replay(base / "SpecificExceptions.testAuthenticatedRateLimitExceeded.txt")[1]
        self.secondary_limit_body = secondary.body
        self.rate_limit_body = json.loads(load_replay(base / "RateLimiting.testGetRateLimit.txt")[0].body)


@dataclass
class Fault:
    """Answer matching requests (path contains `path`, optional query item) differently, `times` times."""

    path: str
    status: int = 502
    body: str = '{"message": "Server Error"}'
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    query: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: str | None = None  # only requests of this kind: issues, timeline, comments, issue_comments, repo, …
    skip: int = 0  # let this many matching requests through first
    # Cut the real 200 answer after this many bytes instead of sending `status`/`body`: with `declare_full` the
    # Content-Length still promises the whole body and the connection drops (a reset mid-transfer); without it
    # the cut body is all there is (a proxy that truncated the page).
    truncate: int | None = None
    declare_full: bool = False


@dataclass
class Record:
    """One request the server saw (the test asserts on these)."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int


@dataclass
class RepoData:
    raw: dict[str, Any]
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    timelines: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class FakeGitHub:
    """State plus a running HTTP server; use as a context manager or call start()/stop()."""

    def __init__(self, shared_dir: Path, tokens: tuple[str, ...] = (), prefix: str = "") -> None:
        self.t = Templates(shared_dir)
        self.tokens = set(tokens)
        self.prefix = prefix.rstrip("/")
        self.repos: dict[str, RepoData] = {}
        self.faults: list[Fault] = []
        self.log: list[Record] = []
        self.lock = threading.RLock()
        self.rate_limit = 5000
        self.rate_window = 3600.0
        self.remaining: dict[str, int] = {}
        self.reset_at: dict[str, float] = {}
        self.delay = 0.0
        self.on_request: Callable[[Record], None] | None = None
        self._event_id = 9_000_000_000
        self.graphql = GraphQLSide(self)
        handler = type("Handler", (_Handler,), {"gh": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # bound now: URLs are known early
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The API base URL to give the miner (`--base-url`)."""
        return self.origin + self.prefix

    # -- request accounting -------------------------------------------------------------------------
    def requests(self, kind: str | None = None) -> list[Record]:
        """Requests seen, optionally only `issues` (list pages), `timeline`, `repo` or `rate_limit`."""
        with self.lock:
            records = list(self.log)
        if kind is None:
            return records
        return [r for r in records if _kind(r.path) == kind]

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    def set_rate_limit(self, limit: int, window: float = 3600.0, remaining: int | None = None) -> None:
        """Quota per token per window; `remaining` sets what is left right now for every token."""
        with self.lock:
            self.rate_limit, self.rate_window = limit, window
            for tok in list(self.remaining) or [""]:
                self.remaining[tok] = limit if remaining is None else remaining
                self.reset_at[tok] = time.time() + window

    # -- data -------------------------------------------------------------------------------------
    def add_repo(self, full_name: str) -> RepoData:
        raw = self._rebase(copy.deepcopy(self.t.repository), full_name)
        raw["full_name"], raw["name"] = full_name, full_name.split("/")[1]
        raw["id"] = abs(hash(full_name)) % 10**8
        self.repos[full_name] = RepoData(raw)
        return self.repos[full_name]

    def add_issue(
        self,
        repo: str,
        number: int,
        *,
        state: str = "closed",
        labels: tuple[str, ...] = (),
        updated_at: datetime | None = None,
        is_pr: bool = False,
        title: str | None = None,
        timeline: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An issue (or PR) built from the recorded issue shape."""
        data = self.repos[repo]
        created = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(hours=number)
        updated = updated_at or created + timedelta(days=1)
        raw = self._rebase(copy.deepcopy(self.t.issue), repo)
        raw.update(
            number=number,
            id=10_000_000 + number + (abs(hash(repo)) % 1000) * 100_000,
            node_id=f"I_{repo}_{number}",
            title=title or f"Issue {number} of {repo}",
            state=state,
            state_reason="completed" if state == "closed" else None,
            created_at=_iso(created),
            updated_at=_iso(updated),
            closed_at=_iso(updated) if state == "closed" else None,
            url=f"{self.url}/repos/{repo}/issues/{number}",
            html_url=f"https://github.com/{repo}/issues/{number}",
            labels=[{"name": lab, "color": "ededed", "url": f"{self.url}/repos/{repo}/labels/{lab}"} for lab in labels],
            comments=sum(1 for e in timeline or [] if e.get("event") == "commented"),
        )
        raw.pop("milestone", None)
        if is_pr:
            raw["pull_request"] = {
                "url": f"{self.url}/repos/{repo}/pulls/{number}",
                "html_url": f"https://github.com/{repo}/pull/{number}",
                "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
                "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
            }
        else:
            raw.pop("pull_request", None)
        data.issues[number] = raw
        data.timelines[number] = timeline if timeline is not None else []
        for entry in data.timelines[number]:
            if entry.get("event") == "commented":
                self._place_comment(repo, number, entry)
        return raw

    # -- comments (timeline `commented` entries are the one truth: the comment lists are derived) ----------
    def _place_comment(self, repo: str, number: int, entry: dict[str, Any]) -> None:
        entry["issue_url"] = f"{self.url}/repos/{repo}/issues/{number}"
        entry["html_url"] = f"https://github.com/{repo}/issues/{number}#issuecomment-{entry['id']}"
        entry["url"] = f"{self.url}/repos/{repo}/issues/comments/{entry['id']}"

    def _recount(self, repo: str, number: int, when: datetime | None) -> None:
        raw = self.repos[repo].issues[number]
        raw["comments"] = sum(1 for e in self.repos[repo].timelines[number] if e.get("event") == "commented")
        if when is not None:
            raw["updated_at"] = _iso(when)

    def add_comment(
        self, repo: str, number: int, when: datetime, body: str, author: str = "coder", touch: bool = True
    ) -> dict[str, Any]:
        """A new comment on an issue at `when` (the issue's `updated_at` moves too, as on GitHub)."""
        with self.lock:
            entry = self.event("commented", when)
            entry["body"] = body
            entry["user"] = {**(entry.get("user") or {}), "login": author}
            entry["actor"] = entry["user"]
            self._place_comment(repo, number, entry)
            self.repos[repo].timelines[number].append(entry)
            self._recount(repo, number, when if touch else None)
            return entry

    def edit_comment(self, repo: str, comment_id: int, when: datetime, body: str) -> None:
        """Edit a comment: new body and `updated_at` (GitHub leaves the issue's `updated_at` alone)."""
        with self.lock:
            entry = self.comment(repo, comment_id)
            entry["body"], entry["updated_at"] = body, _iso(when)

    def delete_comment(self, repo: str, comment_id: int, when: datetime | None = None) -> None:
        """Delete a comment: gone from every list, the issue's count drops (`when`: its new `updated_at`)."""
        with self.lock:
            for number, timeline in self.repos[repo].timelines.items():
                kept = [e for e in timeline if not (e.get("event") == "commented" and e.get("id") == comment_id)]
                if len(kept) != len(timeline):
                    self.repos[repo].timelines[number] = kept
                    self._recount(repo, number, when)
                    return
            raise KeyError(comment_id)

    def comment(self, repo: str, comment_id: int) -> dict[str, Any]:
        for timeline in self.repos[repo].timelines.values():
            for entry in timeline:
                if entry.get("event") == "commented" and entry.get("id") == comment_id:
                    return entry
        raise KeyError(comment_id)

    def _comments_of(self, repo: RepoData, number: int) -> list[dict[str, Any]]:
        """One issue's comments in the REST comment shape (a timeline entry without `event`/`actor`)."""
        out = []
        for entry in repo.timelines.get(number, []):
            if entry.get("event") == "commented":
                comment = {k: v for k, v in entry.items() if k not in ("event", "actor")}
                comment["issue_url"] = f"{self.url}/repos/{repo.raw['full_name']}/issues/{number}"
                out.append(comment)
        return out

    def _list_comments(self, repo: RepoData, query: dict[str, str]) -> list[dict[str, Any]]:
        items = [c for number in repo.issues for c in self._comments_of(repo, number)]
        if query.get("since"):
            items = [c for c in items if c["updated_at"] >= query["since"]]  # "updated at or after"
        key = "updated_at" if query.get("sort") == "updated" else "created_at"
        items.sort(key=lambda c: (c[key], c["id"]), reverse=query.get("direction", "desc") == "desc")
        return items

    def touch(self, repo: str, number: int, when: datetime, **changes: Any) -> None:
        """Simulate an update on GitHub (new `updated_at`, optional field changes)."""
        with self.lock:
            raw = self.repos[repo].issues[number]
            raw["updated_at"] = _iso(when)
            raw.update(changes)

    def event(
        self,
        kind: str,
        when: datetime,
        *,
        commit_id: str | None = None,
        source_repo: str | None = None,
        source_number: int | None = None,
        source_state: str = "closed",
        source_is_pr: bool = True,
    ) -> dict[str, Any]:
        """A timeline entry of type `kind` from the recorded shapes (`connected` borrows the `closed` shape)."""
        base = self.t.events.get(kind) or self.t.events["closed"]
        entry = copy.deepcopy(base)
        entry["event"], entry["created_at"] = kind, _iso(when)
        if kind == "commented":
            entry["updated_at"] = entry["created_at"]
        if kind == "cross-referenced":
            src_repo = source_repo or "PyGithub/PyGithub"
            issue = self._rebase(entry["source"]["issue"], src_repo)
            issue.update(
                number=source_number or 1,
                state=source_state,
                id=source_number or 1,
                repository_url=f"{self.url}/repos/{src_repo}",
            )
            if isinstance(issue.get("repository"), dict):
                issue["repository"]["full_name"] = src_repo
            if source_is_pr:
                issue["pull_request"] = {
                    "url": f"{self.url}/repos/{src_repo}/pulls/{source_number}",
                    "html_url": f"https://github.com/{src_repo}/pull/{source_number}",
                }
            else:
                issue.pop("pull_request", None)
            entry["source"]["issue"] = issue
            entry["updated_at"] = entry["created_at"]
            return entry
        self._event_id += 1
        entry["id"], entry["node_id"] = self._event_id, f"EV_{self._event_id}"
        if kind in ("closed", "referenced", "connected"):
            entry["commit_id"] = commit_id
            entry["commit_url"] = f"{self.url}/repos/x/commits/{commit_id}" if commit_id else None
        return entry

    def populate(
        self,
        repo: str,
        n: int,
        *,
        seed: int = 0,
        pr_every: int = 0,
        labels: tuple[str, ...] = ("bug",),
        open_every: int = 0,
        events_per_issue: int = 4,
        start: datetime | None = None,
    ) -> None:
        """`n` issues numbered 1..n with timelines; every `pr_every`-th item is a PR, every `open_every`-th is
        open; about half are fix-linked by one of the rule's four ways."""
        rng = random.Random(seed)
        t0 = start or datetime(2024, 1, 1, tzinfo=UTC)
        for number in range(1, n + 1):
            when = t0 + timedelta(minutes=number)
            is_pr = bool(pr_every) and number % pr_every == 0
            state = "open" if open_every and number % open_every == 0 else "closed"
            timeline = [
                self.event(
                    rng.choice(["labeled", "commented", "subscribed", "assigned"]),
                    when - timedelta(minutes=5) + timedelta(seconds=k),
                )
                for k in range(max(0, events_per_issue - 1))
            ]
            way = number % 8
            if way == 0:
                timeline.append(self.event("closed", when, commit_id=f"{number:040x}"))
            elif way == 1:
                timeline.append(self.event("referenced", when, commit_id=f"{number + 7:040x}"))
            elif way == 2:
                timeline.append(self.event("cross-referenced", when, source_repo=repo, source_number=n + number))
            elif way == 3:
                timeline.append(self.event("connected", when))
            else:
                timeline.append(self.event("closed", when))
            self.add_issue(repo, number, state=state, labels=labels, updated_at=when, is_pr=is_pr, timeline=timeline)

    def _rebase(self, obj: Any, repo: str) -> Any:
        text = json.dumps(obj).replace("https://api.github.com", self.url).replace("PyGithub/PyGithub", repo)
        return json.loads(text)

    # -- request handling -----------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body_in: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method == "POST" and path.endswith("/graphql"):
            path, query = "/graphql", _graphql_summary(body_in)
        auth = headers.get("authorization")
        token = (auth or "").split(" ", 1)[-1] if auth else ""
        with self.lock:
            status, out_headers, body = self._dispatch(method, path, query, token, headers, body_in=body_in)
            record = Record(method, path, query, auth, status)
            self.log.append(record)
        if self.on_request:
            self.on_request(record)
        if self.delay:
            time.sleep(self.delay)
        return status, out_headers, body

    def _dispatch(  # type: ignore[no-untyped-def]
        self,
        method: str,
        path: str,
        query: dict[str, str],
        token: str,
        headers: dict[str, str],
        faults: bool = True,
        body_in: bytes = b"",
    ):
        if self.tokens and token not in self.tokens:
            return 401, {}, b'{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}'
        for fault in self.faults if faults else []:
            if (
                fault.times > 0
                and fault.path in path
                and all(query.get(k) == v for k, v in fault.query.items())
                and (fault.kind is None or _kind(path) == fault.kind)
            ):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.truncate is not None:
                    return self._truncated(fault, method, path, query, token, headers)
                return fault.status, dict(fault.headers), fault.body.encode()
        if path == "/rate_limit":
            return 200, self._rate_headers(token, count=False), json.dumps(self._rate_body(token)).encode()
        if path == "/graphql" and method == "POST":
            return self.graphql.answer(token, body_in)
        rate = self._rate_headers(token, count=True)
        if rate is None:
            reset = str(int(self.reset_at[token]))
            return (
                403,
                {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                self.t.primary_limit_body.encode(),
            )
        status, body = self._route(path, query)
        link = None
        if status == 200 and isinstance(body, list):
            body, link = self._paginate(path, query, body)
        payload = json.dumps(body).encode()
        out = {**rate, "ETag": '"' + hashlib.sha1(payload).hexdigest() + '"'}
        if link:
            out["Link"] = link
        if status == 200 and headers.get("if-none-match") == out["ETag"]:
            self.remaining[token] += 1  # GitHub does not charge conditional requests answered 304
            out.update(self._rate_headers(token, count=False) or {})
            out.pop("Link", None)
            return 304, out, b""
        return status, out, payload

    def _truncated(
        self, fault: Fault, method: str, path: str, query: dict[str, str], token: str, headers: dict[str, str]
    ):  # type: ignore[no-untyped-def]
        """The real answer, cut after `fault.truncate` bytes (see `Fault`)."""
        plain = {k: v for k, v in headers.items() if k != "if-none-match"}
        status, out, body = self._dispatch(method, path, query, token, plain, faults=False)
        cut = body[: fault.truncate]
        if fault.declare_full:
            out = {**out, CONTENT_LENGTH: str(len(body)), DROP_CONNECTION: "1"}
        return status, out, cut

    def _rate_headers(self, token: str, count: bool) -> dict[str, str] | None:
        now = time.time()
        if token not in self.remaining or now >= self.reset_at.get(token, 0):
            self.remaining[token] = self.rate_limit
            self.reset_at[token] = now + self.rate_window
        if count:
            if self.remaining[token] <= 0:
                return None
            self.remaining[token] -= 1
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining[token]),
            "X-RateLimit-Reset": str(int(self.reset_at[token])),
            "X-RateLimit-Used": str(self.rate_limit - self.remaining[token]),
        }

    def _rate_body(self, token: str) -> dict[str, Any]:
        self._rate_headers(token, count=False)
        body = copy.deepcopy(self.t.rate_limit_body)
        core = {
            "limit": self.rate_limit,
            "remaining": self.remaining[token],
            "reset": int(self.reset_at[token]),
            "used": self.rate_limit - self.remaining[token],
        }
        body.setdefault("resources", {})["core"] = core
        body["rate"] = core
        remaining, reset = self.graphql._budget(token)
        body["resources"]["graphql"] = {
            "limit": self.graphql.limit,
            "remaining": remaining,
            "reset": int(reset),
            "used": self.graphql.limit - remaining,
        }
        return body

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        seg = path.strip("/").split("/")
        not_found = (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if len(seg) < 3 or seg[0] != "repos":
            return not_found
        repo = self.repos.get(f"{seg[1]}/{seg[2]}")
        if repo is None:
            return not_found
        rest = seg[3:]
        if not rest:
            return 200, repo.raw
        if rest == ["issues"]:
            return 200, self._list_issues(repo, query)
        if rest == ["issues", "comments"]:
            return 200, self._list_comments(repo, query)
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and rest[1].isdigit():
            number = int(rest[1])
            return (200, self._comments_of(repo, number)) if number in repo.issues else not_found
        if len(rest) == 2 and rest[0] == "issues" and rest[1].isdigit():
            issue = repo.issues.get(int(rest[1]))
            return (200, issue) if issue else not_found
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "timeline" and rest[1].isdigit():
            number = int(rest[1])
            return (200, repo.timelines[number]) if number in repo.issues else not_found
        return not_found

    def _list_issues(self, repo: RepoData, query: dict[str, str]) -> list[dict[str, Any]]:
        items = list(repo.issues.values())
        state = query.get("state", "open")
        if state != "all":
            items = [i for i in items if i["state"] == state]
        if query.get("labels"):
            wanted = {w.strip() for w in query["labels"].split(",")}
            items = [i for i in items if wanted <= {lab["name"] for lab in i["labels"]}]
        if query.get("since"):
            since = query["since"]
            items = [i for i in items if i["updated_at"] >= since]  # GitHub: "updated at or after"
        key = {"updated": "updated_at", "comments": "comments"}.get(query.get("sort", "created"), "created_at")
        items.sort(key=lambda i: (i[key], i["number"]), reverse=query.get("direction", "desc") == "desc")
        return items

    def _paginate(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[list[Any], str | None]:
        per_page = min(100, int(query.get("per_page", 30)))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self._page_url(path, query, page + 1)}>; rel="next"')
            links.append(f'<{self._page_url(path, query, last)}>; rel="last"')
        return chunk, ", ".join(links) or None

    def _page_url(self, path: str, query: dict[str, str], page: int) -> str:
        return f"{self.url}{path}?{urlencode({**query, 'page': page})}"


def _graphql_summary(body: bytes) -> dict[str, str]:
    """A GraphQL request as a query dict for the log: its operation and its scalar variables."""
    try:
        request = json.loads(body or b"{}")
        operation = re.match(r"^\s*query\s+(\w+)", str(request.get("query", "")))
        variables = request.get("variables") or {}
    except (ValueError, AttributeError):
        return {"operation": "?"}
    out = {"operation": operation.group(1) if operation else "?"}
    out.update({k: str(v) for k, v in variables.items() if v is not None and not isinstance(v, dict | list)})
    return out


def _kind(path: str) -> str:
    seg = path.strip("/").split("/")
    if path == "/rate_limit":
        return "rate_limit"
    if path == "/graphql":
        return "graphql"
    if len(seg) == 3:
        return "repo"
    if seg[3:] == ["issues"]:
        return "issues"
    if seg[3:] == ["issues", "comments"]:
        return "comments"
    if len(seg) == 6 and seg[5] == "comments":
        return "issue_comments"
    if len(seg) == 6 and seg[5] == "timeline":
        return "timeline"
    return "other"


class _Handler(BaseHTTPRequestHandler):
    gh: FakeGitHub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out, body = self.gh.handle("GET", self.path, headers)
        declared = out.pop(CONTENT_LENGTH, None)
        drop = out.pop(DROP_CONNECTION, None)
        self.send_response(status)
        out.setdefault("Content-Type", "application/json; charset=utf-8")
        for key, value in out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", declared or str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        if drop:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body_in = self.rfile.read(length) if length else b""
        status, out, body = self.gh.handle("POST", self.path, headers, body_in)
        self.send_response(status)
        out.setdefault("Content-Type", "application/json; charset=utf-8")
        for key, value in out.items():
            if key not in (CONTENT_LENGTH, DROP_CONNECTION):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request stderr lines
        return
