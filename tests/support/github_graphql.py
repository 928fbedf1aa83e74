"""The GraphQL side of the local GitHub-like server: the miner's queries answered from the same issues and
timelines the REST side serves, so both APIs can be compared on one fake repository.

It answers the operations the miners send (`IssuePage`, `TimelinePages`, and the ecosystem snapshot's
`RepoBatch` of aliased repositories, by operation name), with GitHub's
behaviour where the miner depends on it: `filterBy: {since, states, labels}` ordered by UPDATED_AT with
keyset cursors, nested `timelineItems` cursors, a points budget reported as `rateLimit { cost remaining
resetAt }` (answered RATE_LIMITED when spent), NOT_FOUND for an unknown repository, and faults injected
like the REST side's (`Fault(kind="graphql")`, plus `partial_errors` answers with data and `errors`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.github_server import FakeGitHub, RepoData

_OPERATION = re.compile(r"^\s*query\s+(\w+)")
_TYPENAMES = {"commented": "IssueComment", "cross-referenced": "CrossReferencedEvent", "renamed": "RenamedTitleEvent"}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(*parts: Any) -> str:
    return base64.b64encode(json.dumps(parts).encode()).decode()


def _decode(cursor: str) -> list[Any]:
    return json.loads(base64.b64decode(cursor.encode()))


def typename(event: str) -> str:
    """GitHub's GraphQL type of a REST timeline entry (labeled -> LabeledEvent)."""
    if event in _TYPENAMES:
        return _TYPENAMES[event]
    return "".join(part.capitalize() for part in event.split("_")) + "Event"


def _login(obj: Any) -> dict[str, Any] | None:
    return {"login": obj["login"]} if isinstance(obj, dict) and obj.get("login") else None


def timeline_node(entry: dict[str, Any]) -> dict[str, Any]:
    """A REST timeline entry as the GraphQL timeline item the miner's query selects."""
    kind = entry.get("event", "")
    node: dict[str, Any] = {"__typename": typename(kind), "createdAt": entry.get("created_at")}
    if kind == "cross-referenced":
        src = (entry.get("source") or {}).get("issue") or {}
        digest = hashlib.sha1(json.dumps([src.get("id"), entry.get("created_at")]).encode()).hexdigest()[:16]
        is_pr = bool(src.get("pull_request"))
        state = str(src.get("state") or "").upper()
        node.update(
            id=f"CRE_{digest}",
            referencedAt=entry.get("created_at"),
            actor=_login(entry.get("actor")),
            source={
                "__typename": "PullRequest" if is_pr else "Issue",
                "databaseId": src.get("id"),
                "number": src.get("number"),
                "state": "MERGED" if is_pr and state == "CLOSED" else state,
                "url": src.get("html_url"),
                "repository": {"nameWithOwner": (src.get("repository") or {}).get("full_name")},
            },
        )
        return node
    node["id"] = entry.get("node_id")
    if kind == "commented":
        node.update(
            databaseId=entry.get("id"),
            url=entry.get("html_url"),
            body=entry.get("body"),
            updatedAt=entry.get("updated_at"),
            authorAssociation=entry.get("author_association"),
            author=_login(entry.get("user") or entry.get("actor")),
        )
        return node
    node["actor"] = _login(entry.get("actor"))
    if kind == "closed":
        commit = entry.get("commit_id")
        node["closer"] = {"__typename": "Commit", "oid": commit} if commit else None
        node["stateReason"] = (entry.get("state_reason") or "").upper() or None
    elif kind == "referenced":
        node["commit"] = {"oid": entry.get("commit_id")} if entry.get("commit_id") else None
    elif kind in ("labeled", "unlabeled"):
        label = entry.get("label") or {}
        node["label"] = {"name": label.get("name"), "color": label.get("color")}
    return node


def _connection(items: list[dict[str, Any]], first: int, after: str | None) -> dict[str, Any]:
    start = int(_decode(after)[0]) if after else 0
    chunk = items[start : start + first]
    end = start + len(chunk)
    return {
        "totalCount": len(items),
        "pageInfo": {"hasNextPage": end < len(items), "endCursor": _encode(end) if chunk else after},
        "nodes": [timeline_node(e) for e in chunk],
    }


class GraphQLSide:
    """GraphQL answers and the points budget (separate from REST's, as on GitHub) of one `FakeGitHub`."""

    def __init__(self, gh: FakeGitHub) -> None:
        self.gh = gh
        self.limit = 5000
        self.window = 3600.0
        self.remaining: dict[str, int] = {}
        self.reset_at: dict[str, float] = {}
        self.partial_errors = 0  # answer this many queries with partial data and an `errors` list

    def set_budget(self, limit: int, window: float = 3600.0, remaining: int | None = None) -> None:
        """Points per token per window; `remaining` sets what is left right now for every token."""
        self.limit, self.window = limit, window
        for token in set(self.remaining) | set(self.gh.tokens) | {""}:
            self.remaining[token] = limit if remaining is None else remaining
            self.reset_at[token] = time.time() + window

    def _budget(self, token: str) -> tuple[int, float]:
        now = time.time()
        if token not in self.remaining or now >= self.reset_at.get(token, 0):
            self.remaining[token] = self.limit
            self.reset_at[token] = now + self.window
        return self.remaining[token], self.reset_at[token]

    def _headers(self, token: str) -> dict[str, str]:
        remaining, reset = self._budget(token)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
            "X-RateLimit-Used": str(self.limit - remaining),
            "X-RateLimit-Resource": "graphql",
        }

    def answer(self, token: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            request = json.loads(body or b"{}")
            query, variables = str(request["query"]), dict(request.get("variables") or {})
        except (ValueError, KeyError, TypeError):
            return 400, {}, b'{"message": "Problems parsing JSON"}'
        match = _OPERATION.match(query)
        operation = match.group(1) if match else ""
        remaining, reset = self._budget(token)
        # GitHub's rule: the connections' nodes requested, divided by 100 (an issue page with its nested
        # timelines and labels costs 2 points; a follow-up of timelines 1)
        first = int(variables.get("first") or 0)
        cost = max(1, round((1 + 2 * first) / 100)) if operation == "IssuePage" else 1
        if remaining < cost:
            message = f"API rate limit exceeded for user ID {abs(hash(token)) % 10**6}."
            body_out = {"errors": [{"type": "RATE_LIMITED", "message": message}]}
            headers = {**self._headers(token), "X-RateLimit-Remaining": "0"}
            return 200, headers, json.dumps(body_out).encode()
        self.remaining[token] = remaining - cost
        rate = {"cost": cost, "remaining": self.remaining[token], "resetAt": _iso(reset), "limit": self.limit}
        if operation == "IssuePage":
            data, errors = self._issue_page(variables)
        elif operation == "TimelinePages":
            data, errors = self._timeline_pages(variables), []
        elif operation == "RepoBatch":
            data, errors = self._repo_batch(variables)
        else:
            unknown = {"errors": [{"message": f"unknown operation {operation!r}"}]}
            return 200, self._headers(token), json.dumps(unknown).encode()
        out: dict[str, Any] = {"data": {"rateLimit": rate, **data}}
        if errors:
            out["errors"] = errors
        elif self.partial_errors > 0:
            self.partial_errors -= 1
            for key in data:  # what a GitHub timeout looks like: the fields came back null beside an error
                out["data"][key] = None
            out["errors"] = [
                {"message": "Something went wrong while executing your query. This may be the result of a timeout."}
            ]
        return 200, self._headers(token), json.dumps(out).encode()

    def _issue_page(self, v: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        full = f"{v.get('owner')}/{v.get('name')}"
        repo = self.gh.repos.get(full)
        if repo is None:
            message = f"Could not resolve to a Repository with the name '{full}'."
            return {"repository": None}, [{"type": "NOT_FOUND", "path": ["repository"], "message": message}]
        node: dict[str, Any] = {}
        if v.get("withRepo"):
            node.update(self._repository(repo))
        node["issues"] = self._issues(repo, v)
        return {"repository": node}, []

    def _repository(self, repo: RepoData) -> dict[str, Any]:
        raw = repo.raw
        return {
            "databaseId": raw.get("id"),
            "id": raw.get("node_id"),
            "name": raw.get("name"),
            "nameWithOwner": raw.get("full_name"),
            "description": raw.get("description"),
            "url": raw.get("html_url"),
            "isFork": raw.get("fork"),
            "isArchived": raw.get("archived"),
            "createdAt": raw.get("created_at"),
            "updatedAt": raw.get("updated_at"),
            "pushedAt": raw.get("pushed_at"),
            "stargazerCount": raw.get("stargazers_count"),
            "forkCount": raw.get("forks_count"),
            "primaryLanguage": {"name": raw["language"]} if raw.get("language") else None,
            "defaultBranchRef": {"name": raw.get("default_branch")},
            "owner": {"login": raw.get("full_name", "/").split("/")[0]},
        }

    def _issues(self, repo: RepoData, v: dict[str, Any]) -> dict[str, Any]:
        items = [i for i in repo.issues.values() if not i.get("pull_request")]
        if v.get("states"):
            items = [i for i in items if i["state"].upper() in v["states"]]
        if v.get("labels"):
            wanted = set(v["labels"])  # GraphQL: any of the labels
            items = [i for i in items if wanted & {lab["name"] for lab in i["labels"]}]
        if v.get("since"):
            items = [i for i in items if i["updated_at"] >= v["since"]]
        items.sort(key=lambda i: (i["updated_at"], i["number"]))
        if v.get("after"):
            upd, number = _decode(v["after"])
            items = [i for i in items if (i["updated_at"], i["number"]) > (upd, number)]
        first = min(100, int(v.get("first") or 0))
        chunk = items[:first]
        tl_first = min(100, int(v.get("timeline") or 0))
        nodes = [self._issue(repo, i, tl_first) for i in chunk]
        end = _encode(chunk[-1]["updated_at"], chunk[-1]["number"]) if chunk else v.get("after")
        info = {"hasNextPage": len(items) > first, "endCursor": end}
        return {"totalCount": len(items), "pageInfo": info, "nodes": nodes}

    def _issue(self, repo: RepoData, raw: dict[str, Any], tl_first: int) -> dict[str, Any]:
        user = raw.get("user") or {}
        return {
            "id": raw.get("node_id"),
            "databaseId": raw.get("id"),
            "number": raw["number"],
            "title": raw.get("title"),
            "body": raw.get("body"),
            "state": str(raw.get("state")).upper(),
            "stateReason": (raw.get("state_reason") or "").upper() or None,
            "createdAt": raw.get("created_at"),
            "updatedAt": raw.get("updated_at"),
            "closedAt": raw.get("closed_at"),
            "url": raw.get("html_url"),
            "author": {"login": user["login"]} if user.get("login") else None,
            "authorAssociation": raw.get("author_association"),
            "labels": {"nodes": [{"name": lab["name"], "color": lab.get("color")} for lab in raw["labels"]]},
            "comments": {"totalCount": raw.get("comments")},
            "timelineItems": _connection(repo.timelines.get(raw["number"], []), tl_first, None),
        }

    def _timeline_pages(self, v: dict[str, Any]) -> dict[str, Any]:
        by_node = {
            raw.get("node_id"): (repo, number) for repo in self.gh.repos.values() for number, raw in repo.issues.items()
        }
        out: dict[str, Any] = {}
        k = 0
        while f"id{k}" in v:
            found = by_node.get(v[f"id{k}"])
            if found is None:
                out[f"i{k}"] = None
            else:
                repo, number = found
                out[f"i{k}"] = {
                    "number": number,
                    "timelineItems": _connection(repo.timelines.get(number, []), 100, v.get(f"after{k}")),
                }
            k += 1
        return out

    def _repo_batch(self, v: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Aliases r0… of `repository(owner: $oK, name: $nK)`: GitHub's partial answer, an unknown repository
        null beside a NOT_FOUND error whose path names its alias."""
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        k = 0
        while f"o{k}" in v:
            full = f"{v[f'o{k}']}/{v[f'n{k}']}"
            repo = next((r for name, r in self.gh.repos.items() if name.lower() == full.lower()), None)
            if repo is None:
                data[f"r{k}"] = None
                message = f"Could not resolve to a Repository with the name '{full}'."
                errors.append({"type": "NOT_FOUND", "path": [f"r{k}"], "message": message})
            else:
                data[f"r{k}"] = self._snapshot(repo)
            k += 1
        return data, errors

    def _snapshot(self, repo: RepoData) -> dict[str, Any]:
        """The snapshot fields of one repository: counts from its stored issues, the rest from its raw JSON
        (`topics`, `license`, `releases` as tests set them)."""
        raw = repo.raw
        items = list(repo.issues.values())
        open_prs = sum(1 for i in items if i.get("pull_request") and i["state"] == "open")
        open_issues = sum(1 for i in items if not i.get("pull_request") and i["state"] == "open")
        labels = sorted({lab["name"] for i in items for lab in i.get("labels") or []})
        releases = sorted(raw.get("releases") or [], key=lambda r: r["created_at"], reverse=True)[:20]
        return {
            "nameWithOwner": raw.get("full_name"),
            "stargazerCount": raw.get("stargazers_count"),
            "forkCount": raw.get("forks_count"),
            "watchers": {"totalCount": raw.get("subscribers_count", raw.get("watchers_count"))},
            "issues": {"totalCount": open_issues},
            "pullRequests": {"totalCount": open_prs},
            "defaultBranchRef": {"name": raw.get("default_branch")},
            "licenseInfo": {"spdxId": (raw.get("license") or {}).get("spdx_id")} if raw.get("license") else None,
            "primaryLanguage": {"name": raw["language"]} if raw.get("language") else None,
            "repositoryTopics": {"nodes": [{"topic": {"name": t}} for t in (raw.get("topics") or [])[:20]]},
            "description": raw.get("description"),
            "releases": {"nodes": [{"tagName": r["tag_name"], "publishedAt": r.get("published_at")} for r in releases]},
            "labels": {"nodes": [{"name": name} for name in labels[:100]]},
        }
