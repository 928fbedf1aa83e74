"""GitHub REST and GraphQL access through PyGithub's requester: tokens, pagination, rate limits, retries,
clean errors (the one client boundary of the GitHub miners).

Callers (the source) get parsed JSON or a `GitHubError`; they never see a status code, and no message,
log line or exception produced here ever contains a token.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException
from github.Requester import Requester

from db.errors import InteropError

PRIMARY_MESSAGE = "api rate limit exceeded"
SECONDARY_DEFAULT_WAIT = 60.0
#: Faults of the connection itself (no answer from GitHub): retried with backoff.
NETWORK_ERRORS = (requests.exceptions.RequestException, ConnectionError, TimeoutError)
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class GitHubError(InteropError):
    """A GitHub problem the user must see as one line (never contains a token)."""


class GitHubAuthError(GitHubError):
    """The token was rejected."""


class GitHubNotFound(GitHubError):
    """The repository or issue does not exist (or the token cannot see it)."""


class GitHubUnavailable(GitHubError):
    """Retries or rate-limit waits would exceed the allowed time: the run stops, keeping what it stored."""


class GitHubResponseError(GitHubError):
    """GitHub answered with something that is not the JSON we asked for."""


#: GraphQL error types that are worth a retry (GitHub's own timeouts and partial outages).
GRAPHQL_TRANSIENT = {"SERVICE_UNAVAILABLE", "INTERNAL", "TIMEOUT", "INTERNAL_SERVER_ERROR", None}


@dataclass
class GraphQLAnswer:
    """A GraphQL response's `data` and the budget it reported (`rateLimit { cost remaining resetAt }`)."""

    data: dict[str, Any]
    cost: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


@dataclass
class ClientStats:
    """What a run cost: HTTP requests (retries included), retries, rate-limit waits and their length."""

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    waited_seconds: float = 0.0
    not_modified: int = 0
    token_switches: int = 0
    graphql_cost: int = 0  # GraphQL rate-limit points spent (as GitHub reports them)


@dataclass
class _Token:
    label: str
    secret: str = field(repr=False)
    github: Github = field(repr=False)
    remaining: int | None = None
    reset: float | None = None
    gql_remaining: int | None = None  # GraphQL has its own budget (points), apart from REST's requests
    gql_reset: float | None = None


@dataclass
class Page:
    """One response: its JSON, its ETag, and the next page's URL (None on the last page)."""

    data: Any
    etag: str | None
    next_url: str | None
    not_modified: bool = False


def _strict_json(body: str) -> Any:
    """The JSON of a 200 body; an empty, cut-short or non-JSON body raises ValueError (PyGithub would wrap
    text that does not start with { or [ in {"data": ...} and an empty body as None)."""
    if not body or not body.strip():
        raise ValueError("empty body")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at character {exc.pos} of {len(body)}") from None


def _error_body(body: str) -> Any:
    """An error response's JSON for PyGithub's exception (its message), or the raw text when it is not JSON."""
    try:
        return json.loads(body) if body else None
    except json.JSONDecodeError:
        return {"data": body}


def split_tokens(value: str | None) -> list[str]:
    """`INTEROP_GITHUB_TOKEN` may hold several comma-separated tokens."""
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def safe_url(url: str) -> str:
    """`url` with its credentials (user:password@, a token as user, ?access_token=…) masked, fit for logs and
    the database."""
    from db.masking import mask_url

    return mask_url(url)


class GitHubClient:
    """Sequential GET requests with a bounded patience for rate limits and faults."""

    def __init__(
        self,
        tokens: list[str],
        base_url: str = "https://api.github.com",
        *,
        per_page: int = 100,
        timeout: int = 30,
        min_interval: float = 0.25,
        reserve: int = 5,
        max_wait: float = 3600.0,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        notify: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self.reserve = reserve
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.notify = notify or (lambda _msg: None)
        self.sleep = sleep
        self.stats = ClientStats()
        kwargs: dict[str, Any] = dict(
            base_url=self.base_url,
            per_page=per_page,
            timeout=timeout,
            retry=None,  # we retry ourselves, so waits are counted, bounded and reported
            seconds_between_requests=min_interval or None,
            seconds_between_writes=None,
        )
        secrets = [t for t in tokens if t]
        if secrets:
            self._tokens = [
                _Token(f"token #{i + 1}", s, Github(auth=Auth.Token(s), **kwargs)) for i, s in enumerate(secrets)
            ]
        else:
            self._tokens = [_Token("anonymous", "", Github(**kwargs))]
        self._current = self._tokens[0]
        self._last_cost = 1  # points of the last GraphQL query: the next one is kept in reserve for it
        if len(self._tokens) > 1:
            self._probe_quotas()

    # -- public API -------------------------------------------------------------------------------

    def get(self, path_or_url: str, params: dict[str, Any] | None = None, etag: str | None = None) -> Page:
        """One GET (retried as needed); `etag` makes it conditional (a 304 comes back as `not_modified`).

        A 5xx, a network fault, and a 200 whose body is cut short or is not JSON are retried with backoff
        (a proxy or GitHub itself sometimes truncates a page); a 4xx other than a rate limit is not.
        """
        deadline = time.monotonic() + self.max_wait
        attempt = 0
        what = self._describe(path_or_url)
        while True:
            token = self._pick(deadline, what)
            headers = {"If-None-Match": etag} if etag else None
            self.stats.requests += 1
            try:
                status, resp_headers, body = token.github.requester.requestJson(
                    "GET", path_or_url, parameters=params, headers=headers
                )
                if status >= 400:
                    raise Requester.createException(status, resp_headers, _error_body(body))
            except (GithubException, *NETWORK_ERRORS) as exc:
                attempt = self._after_failure(exc, token, what, deadline, attempt, graphql=False)
                continue
            self._note_quota(token, resp_headers)
            if status == 304:
                self.stats.not_modified += 1
                return Page(None, etag, None, not_modified=True)
            try:
                data = _strict_json(body)
            except ValueError as exc:  # a truncated or garbled 200: as transient as a 5xx
                if attempt + 1 < self.max_attempts:
                    attempt += 1
                    self._backoff(attempt, deadline, f"malformed JSON from GitHub for {what} ({exc})")
                    continue
                raise GitHubResponseError(
                    self._scrub(f"malformed JSON from GitHub for {what} after {attempt + 1} attempts: {exc}")
                ) from None
            match = _LINK_NEXT.search(resp_headers.get("link", "") or "")
            return Page(data, resp_headers.get("etag"), match.group(1) if match else None)

    def _after_failure(
        self, exc: BaseException, token: _Token, what: str, deadline: float, attempt: int, *, graphql: bool
    ) -> int:
        """One failed REST or GraphQL exchange: wait out a rate limit (same attempt) or back off from a 5xx or a
        network fault (next attempt); raise the one-line error when no retry is left."""
        if isinstance(exc, GithubException):
            (self._note_graphql_quota if graphql else self._note_quota)(token, exc.headers or {})
            wait = self._rate_limit_wait(exc)
            if wait is not None:
                self._wait(wait, deadline, f"GitHub rate limit reached ({what})")
                if graphql:  # unknown again after the reset; the retry will tell
                    token.gql_remaining = None
                else:
                    token.remaining = None
                self.stats.retries += 1
                return attempt
            if exc.status >= 500 and attempt + 1 < self.max_attempts:
                self._backoff(attempt + 1, deadline, f"GitHub answered {exc.status} for {what}")
                return attempt + 1
            raise self._error(exc, what) from None
        if attempt + 1 < self.max_attempts:
            self._backoff(attempt + 1, deadline, f"network problem ({type(exc).__name__}) on {what}")
            return attempt + 1
        raise GitHubUnavailable(
            self._scrub(f"gave up on {what} after {attempt + 1} attempts: {type(exc).__name__}")
        ) from None

    def get_object(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a single JSON object."""
        page = self.get(path, params)
        if not isinstance(page.data, dict):
            raise GitHubResponseError(f"expected a JSON object from {self._describe(path)}")
        return page.data

    def graphql(
        self,
        query: str,
        variables: dict[str, Any],
        what: str,
        on_retry: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        not_found_ok: bool = False,
        cost: int | None = None,
    ) -> GraphQLAnswer:
        """One GraphQL query (POST /graphql), retried like `get`; `what` names it in every message (the
        repository and cursor). A 5xx, a timeout, a cut-short body and a partial `errors` answer are retried
        with backoff (`on_retry` may shrink the query first); a RATE_LIMITED answer or a 403/429 limit waits
        for the reset, bounded by `max_wait`; NOT_FOUND is `GitHubNotFound` (with `not_found_ok`, an answer whose
        only errors are NOT_FOUND is returned, those fields null: a batch of aliased repositories), other errors
        one line. `cost` is the points the caller expects the query to cost (default: the last query's)."""
        deadline = time.monotonic() + self.max_wait
        attempt = 0
        while True:
            token = self._pick(deadline, what, graphql=True, cost=cost)
            self.stats.requests += 1
            requester = token.github.requester
            try:
                status, resp_headers, body = requester.requestJson(
                    "POST", requester.graphql_url, input={"query": query, "variables": variables}
                )
                if status >= 400:
                    raise Requester.createException(status, resp_headers, _error_body(body))
            except (GithubException, *NETWORK_ERRORS) as exc:
                retried = self._after_failure(exc, token, what, deadline, attempt, graphql=True)
                if retried > attempt and on_retry:  # a backoff, not a rate-limit wait: ask for less next time
                    variables = on_retry(variables)
                attempt = retried
                continue
            self._note_graphql_quota(token, resp_headers)
            try:
                answer = _strict_json(body)
                if not isinstance(answer, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                if attempt + 1 < self.max_attempts:
                    attempt += 1
                    self._backoff(attempt, deadline, f"malformed JSON from GitHub for {what} ({exc})")
                    continue
                raise GitHubResponseError(
                    self._scrub(f"malformed JSON from GitHub for {what} after {attempt + 1} attempts: {exc}")
                ) from None
            errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)] or (
                [{"message": str(answer["errors"])}] if answer.get("errors") else []
            )
            types = {e.get("type") for e in errors}
            if "RATE_LIMITED" in types:
                token.gql_remaining = 0
                reset = token.gql_reset or (time.time() + SECONDARY_DEFAULT_WAIT)
                self._wait(max(0.0, reset - time.time()) + 1.0, deadline, f"GitHub GraphQL rate limit reached ({what})")
                token.gql_remaining = None
                self.stats.retries += 1
                continue
            first = errors[0].get("message", "") if errors else ""
            if not_found_ok and types == {"NOT_FOUND"} and isinstance(answer.get("data"), dict):
                return self._graphql_budget(token, answer["data"])
            if "NOT_FOUND" in types:
                raise GitHubNotFound(self._scrub(f"not found on GitHub: {what} ({first})"))
            data = answer.get("data")
            if errors or not isinstance(data, dict):
                transient = bool(types & GRAPHQL_TRANSIENT) or not isinstance(data, dict)
                if transient and attempt + 1 < self.max_attempts:
                    attempt += 1
                    self._backoff(attempt, deadline, f"GitHub answered {len(errors)} GraphQL error(s) for {what}")
                    variables = on_retry(variables) if on_retry else variables
                    continue
                why = f"{first}" if errors else "no data"
                raise GitHubResponseError(self._scrub(f"GitHub GraphQL query failed for {what}: {why}"))
            return self._graphql_budget(token, data)

    def _graphql_budget(self, token: _Token, data: dict[str, Any]) -> GraphQLAnswer:
        """The `rateLimit` the query asked for, noted on the token (it is the truth about the budget)."""
        given = data.get("rateLimit")
        limit: dict[str, Any] = given if isinstance(given, dict) else {}
        answer = GraphQLAnswer(data)
        with contextlib.suppress(TypeError, ValueError):
            if limit.get("cost") is not None:
                answer.cost = int(limit["cost"])
                self._last_cost = max(1, answer.cost)
                self.stats.graphql_cost += answer.cost
            if limit.get("remaining") is not None:
                answer.remaining = token.gql_remaining = int(limit["remaining"])
            if limit.get("resetAt"):
                reset = datetime.fromisoformat(str(limit["resetAt"]).replace("Z", "+00:00"))
                answer.reset_at = token.gql_reset = reset.timestamp()
        return answer

    def pages(self, path: str, params: dict[str, Any] | None = None, first_etag: str | None = None) -> Iterator[Page]:
        """Every page of a list endpoint, following `Link: rel="next"`; each page's data is a list of objects."""
        query = dict(params or {})
        query.setdefault("per_page", self.per_page)
        page = self.get(path, query, etag=first_etag)
        while True:
            if not page.not_modified and not (
                isinstance(page.data, list) and all(isinstance(x, dict) for x in page.data)
            ):
                raise GitHubResponseError(f"expected a JSON list of objects from {self._describe(path)}")
            yield page
            if not page.next_url:
                return
            page = self.get(page.next_url)

    def quota(self) -> list[tuple[str, int | None, float | None]]:
        """(token label, remaining, reset epoch) as last seen, for messages and tests."""
        return [(t.label, t.remaining, t.reset) for t in self._tokens]

    def close(self) -> None:
        for token in self._tokens:
            with contextlib.suppress(Exception):
                token.github.close()

    # -- internals ----------------------------------------------------------------------------------

    def _probe_quotas(self) -> None:
        """With several tokens, ask /rate_limit for each and start with the one with most quota left."""
        for token in self._tokens:
            self._current = token
            try:
                data = self.get("/rate_limit").data or {}
                core = (data.get("resources") or {}).get("core") or data.get("rate") or {}
                token.remaining = int(core.get("remaining", token.remaining or 0))
                token.reset = float(core.get("reset", token.reset or 0))
                gql = (data.get("resources") or {}).get("graphql") or {}
                if "remaining" in gql:
                    token.gql_remaining, token.gql_reset = int(gql["remaining"]), float(gql.get("reset") or 0) or None
            except GitHubAuthError:
                token.remaining, token.reset = -1, None
                self.notify(f"{token.label} was rejected by GitHub; not using it")
        usable = [t for t in self._tokens if (t.remaining or 0) >= 0]
        if not usable:
            raise GitHubAuthError("GitHub rejected every configured token")
        self._tokens = usable
        self._current = max(usable, key=lambda t: t.remaining or 0)

    def graphql_points_left(self) -> int | None:
        """GraphQL points above the reserve on the richest token, None while any token's budget is unknown."""
        known = [t.gql_remaining for t in self._tokens]
        if any(left is None for left in known):
            return None
        return max(0, max(int(left or 0) for left in known) - self.reserve)

    def _pick(self, deadline: float, what: str, graphql: bool = False, cost: int | None = None) -> _Token:
        """The token to use next: switch when the current one runs low, sleep when they all do (REST requests
        and GraphQL points are separate budgets)."""

        def left(t: _Token) -> int | None:
            return t.gql_remaining if graphql else t.remaining

        reserve = self.reserve + ((cost or self._last_cost) if graphql else 1)
        cur = self._current
        if left(cur) is None or (left(cur) or 0) >= reserve:  # after the query, the reserve is left
            return cur
        others = [t for t in self._tokens if t is not cur and (left(t) is None or (left(t) or 0) >= reserve)]
        if others:
            self._current = max(others, key=lambda t: 10**9 if left(t) is None else int(left(t) or 0))
            self.stats.token_switches += 1
            self.notify(f"switching to {self._current.label} ({cur.label} has {left(cur)} {self._unit(graphql)} left)")
            return self._current
        reset = min((r for t in self._tokens if (r := (t.gql_reset if graphql else t.reset))), default=None)
        wait = max(0.0, (reset or time.time()) - time.time()) + 1.0
        self._wait(wait, deadline, f"rate limit low ({left(cur)} {self._unit(graphql)} left) before {what}")
        for t in self._tokens:
            if graphql:
                t.gql_remaining = None
            else:
                t.remaining = None
        return self._current

    @staticmethod
    def _unit(graphql: bool) -> str:
        return "GraphQL points" if graphql else "requests"

    def _note_quota(self, token: _Token, headers: dict[str, Any]) -> None:
        h = {str(k).lower(): v for k, v in headers.items()}
        with contextlib.suppress(TypeError, ValueError):
            if "x-ratelimit-remaining" in h:
                token.remaining = int(float(h["x-ratelimit-remaining"]))
            if "x-ratelimit-reset" in h:
                token.reset = float(h["x-ratelimit-reset"])

    def _note_graphql_quota(self, token: _Token, headers: dict[str, Any]) -> None:
        h = {str(k).lower(): v for k, v in headers.items()}
        with contextlib.suppress(TypeError, ValueError):
            if "x-ratelimit-remaining" in h:
                token.gql_remaining = int(float(h["x-ratelimit-remaining"]))
            if "x-ratelimit-reset" in h:
                token.gql_reset = float(h["x-ratelimit-reset"])

    def _rate_limit_wait(self, exc: GithubException) -> float | None:
        """Seconds to wait when `exc` is a primary or secondary rate limit (403/429), else None."""
        if exc.status not in (403, 429):
            return None
        h = {str(k).lower(): v for k, v in (exc.headers or {}).items()}
        message = str((exc.data or {}).get("message", "") if isinstance(exc.data, dict) else "").lower()
        retry_after = h.get("retry-after")
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                return max(0.0, float(retry_after))
        limited = (
            Requester.isRateLimitError(message)
            or "rate limit" in message
            or str(h.get("x-ratelimit-remaining", "")) == "0"
            or exc.status == 429
        )
        if not limited:
            return None
        if str(h.get("x-ratelimit-remaining", "")) == "0" and h.get("x-ratelimit-reset"):
            with contextlib.suppress(ValueError):
                return max(0.0, float(h["x-ratelimit-reset"]) - time.time()) + 1.0
        return SECONDARY_DEFAULT_WAIT

    def _wait(self, seconds: float, deadline: float, reason: str) -> None:
        if time.monotonic() + seconds > deadline:
            raise GitHubUnavailable(
                self._scrub(
                    f"{reason}: waiting {seconds:.0f}s more would exceed the {self.max_wait:.0f}s limit; "
                    "stopping (everything fetched so far is stored; re-run to continue)"
                )
            )
        self.stats.rate_limit_waits += 1
        self.stats.waited_seconds += seconds
        self.notify(self._scrub(f"{reason}: sleeping {seconds:.0f}s until the limit resets"))
        self.sleep(seconds)

    def _backoff(self, attempt: int, deadline: float, reason: str) -> None:
        seconds = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        if time.monotonic() + seconds > deadline:
            raise GitHubUnavailable(self._scrub(f"{reason}; giving up (retry budget of {self.max_wait:.0f}s spent)"))
        self.stats.retries += 1
        self.notify(self._scrub(f"{reason}; retry {attempt}/{self.max_attempts - 1} in {seconds:.1f}s"))
        self.sleep(seconds)

    def _error(self, exc: GithubException, what: str) -> GitHubError:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        detail = f": {message}" if message else ""
        if exc.status == 401:
            return GitHubAuthError(self._scrub(f"GitHub rejected the token (401{detail}) for {what}"))
        if exc.status in (404, 410):
            return GitHubNotFound(self._scrub(f"not found on GitHub: {what}"))
        if exc.status >= 500:
            return GitHubUnavailable(self._scrub(f"GitHub kept answering {exc.status} for {what}; giving up"))
        return GitHubError(self._scrub(f"GitHub answered {exc.status} for {what}{detail}"))

    def _describe(self, path_or_url: str) -> str:
        parts = urlsplit(path_or_url)
        from db.masking import mask_text

        return mask_text(f"GET {parts.path or path_or_url}" + (f"?{parts.query}" if parts.query else ""))

    def _scrub(self, text: str) -> str:
        for token in self._tokens:
            if token.secret:
                text = text.replace(token.secret, "***")
        return text
