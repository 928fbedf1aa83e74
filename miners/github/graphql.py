"""GitHub GraphQL queries of the issue miner and their answers read into the REST shapes the loader stores.

Issues come in pages of up to 100 with their labels and the first page of their timeline (comments are
timeline items too), so a repository costs about one request per 100 issues. Every GraphQL node is turned
into the JSON the REST API gives for the same object (the GraphQL node kept under `graphql`), so issues,
events, comments and fix links are the same rows whichever API mined them.
"""

from __future__ import annotations

import re
from typing import Any

#: Timeline item types whose REST `event` name is not the snake_case of the type minus "Event".
_EVENT_NAMES = {
    "IssueComment": "commented",
    "CrossReferencedEvent": "cross-referenced",
    "RenamedTitleEvent": "renamed",
}

#: Item types asked for with their actor and time (REST's timeline gives all of these too).
GENERIC_EVENTS = (
    "AddedToProjectEvent",
    "AssignedEvent",
    "CommentDeletedEvent",
    "ConnectedEvent",
    "ConvertedNoteToIssueEvent",
    "DemilestonedEvent",
    "DisconnectedEvent",
    "LockedEvent",
    "MarkedAsDuplicateEvent",
    "MentionedEvent",
    "MilestonedEvent",
    "MovedColumnsInProjectEvent",
    "PinnedEvent",
    "RemovedFromProjectEvent",
    "RenamedTitleEvent",
    "ReopenedEvent",
    "SubscribedEvent",
    "TransferredEvent",
    "UnassignedEvent",
    "UnlockedEvent",
    "UnmarkedAsDuplicateEvent",
    "UnpinnedEvent",
    "UnsubscribedEvent",
    "UserBlockedEvent",
)

_SOURCE = "__typename databaseId number state url repository { nameWithOwner }"

TIMELINE_FIELDS = (
    "totalCount pageInfo { hasNextPage endCursor } nodes { __typename ... on Node { id } "
    "... on IssueComment { databaseId url body createdAt updatedAt authorAssociation author { login } } "
    "... on ClosedEvent { createdAt stateReason actor { login } closer { __typename "
    "... on Commit { oid } ... on PullRequest { number url } } } "
    "... on ReferencedEvent { createdAt actor { login } commit { oid } } "
    "... on CrossReferencedEvent { createdAt referencedAt actor { login } "
    f"source {{ ... on Issue {{ {_SOURCE} }} ... on PullRequest {{ {_SOURCE} }} }} }} "
    "... on LabeledEvent { createdAt actor { login } label { name color } } "
    "... on UnlabeledEvent { createdAt actor { login } label { name color } } "
    + " ".join(f"... on {t} {{ createdAt actor {{ login }} }}" for t in GENERIC_EVENTS)
    + " }"
)

REPOSITORY_FIELDS = (
    "databaseId id name nameWithOwner description url isFork isArchived createdAt updatedAt pushedAt "
    "stargazerCount forkCount primaryLanguage { name } defaultBranchRef { name } owner { login }"
)

ISSUE_FIELDS = (
    "id databaseId number title body state stateReason createdAt updatedAt closedAt url "
    "author { login } authorAssociation labels(first: 100) { nodes { name color } } comments { totalCount } "
    f"timelineItems(first: $timeline) {{ {TIMELINE_FIELDS} }}"
)

ISSUE_PAGE = (
    "query IssuePage($owner: String!, $name: String!, $first: Int!, $after: String, $since: DateTime, "
    "$states: [IssueState!], $labels: [String!], $timeline: Int!, $withRepo: Boolean!) { "
    "rateLimit { cost remaining resetAt } "
    "repository(owner: $owner, name: $name) { "
    f"... @include(if: $withRepo) {{ {REPOSITORY_FIELDS} }} "
    "issues(first: $first, after: $after, orderBy: {field: UPDATED_AT, direction: ASC}, "
    "filterBy: {since: $since, states: $states, labels: $labels}) { "
    f"totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ {ISSUE_FIELDS} }} }} }} }}"
)


def timeline_pages_query(count: int) -> str:
    """The rest of the timelines of `count` issues in one request (aliases i0…), each from its own cursor."""
    params = ", ".join(f"$id{k}: ID!, $after{k}: String" for k in range(count))
    parts = " ".join(
        f"i{k}: node(id: $id{k}) {{ ... on Issue {{ number timelineItems(first: 100, after: $after{k}) "
        f"{{ {TIMELINE_FIELDS} }} }} }}"
        for k in range(count)
    )
    return f"query TimelinePages({params}) {{ rateLimit {{ cost remaining resetAt }} {parts} }}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_name(typename: str) -> str:
    """REST's `event` for a GraphQL timeline item type (LabeledEvent -> labeled)."""
    if typename in _EVENT_NAMES:
        return _EVENT_NAMES[typename]
    return _snake(typename.removesuffix("Event"))


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _login(obj: Any) -> dict[str, Any] | None:
    return {"login": obj["login"]} if isinstance(obj, dict) and obj.get("login") else None


def repository_json(node: dict[str, Any]) -> dict[str, Any]:
    """REST's repository JSON for the fields the GraphQL query asked for."""
    return {
        "id": node.get("databaseId"),
        "node_id": node.get("id"),
        "name": node.get("name"),
        "full_name": node.get("nameWithOwner"),
        "owner": _login(node.get("owner")),
        "description": node.get("description"),
        "html_url": node.get("url"),
        "fork": node.get("isFork"),
        "archived": node.get("isArchived"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "pushed_at": node.get("pushedAt"),
        "stargazers_count": node.get("stargazerCount"),
        "forks_count": node.get("forkCount"),
        "language": (node.get("primaryLanguage") or {}).get("name"),
        "default_branch": (node.get("defaultBranchRef") or {}).get("name"),
        "graphql": node,
    }


def issue_json(node: dict[str, Any]) -> dict[str, Any]:
    """REST's issue JSON for one GraphQL issue node (its timeline left out: it is stored as events)."""
    kept = {k: v for k, v in node.items() if k != "timelineItems"}
    return {
        "id": node.get("databaseId"),
        "node_id": node.get("id"),
        "number": node["number"],
        "title": node.get("title"),
        "body": node.get("body"),
        "state": _lower(node.get("state")),
        "state_reason": _lower(node.get("stateReason")),
        "labels": [{"name": lab["name"], "color": lab.get("color")} for lab in (node.get("labels") or {})["nodes"]],
        "user": _login(node.get("author")),
        "author_association": node.get("authorAssociation"),
        "comments": (node.get("comments") or {}).get("totalCount"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "closed_at": node.get("closedAt"),
        "html_url": node.get("url"),
        "graphql": kept,
    }


def _source_json(source: dict[str, Any]) -> dict[str, Any]:
    """REST's `source.issue` of a cross-reference (a merged PR is `closed` there)."""
    is_pr = source.get("__typename") == "PullRequest"
    state = _lower(source.get("state"))
    issue: dict[str, Any] = {
        "id": source.get("databaseId"),
        "number": source.get("number"),
        "state": "closed" if state == "merged" else state,
        "html_url": source.get("url"),
        "repository": {"full_name": (source.get("repository") or {}).get("nameWithOwner")},
    }
    if is_pr:
        issue["pull_request"] = {"html_url": source.get("url"), "url": source.get("url")}
    return {"type": "issue", "issue": issue}


def event_json(item: dict[str, Any]) -> dict[str, Any]:
    """REST's timeline entry for one GraphQL timeline item (the item kept under `graphql`)."""
    typename = str(item.get("__typename") or "Unknown")
    kind = event_name(typename)
    out: dict[str, Any] = {"event": kind, "created_at": item.get("createdAt")}
    if kind != "cross-referenced" and item.get("id"):
        out["node_id"] = item["id"]  # REST gives no id for cross-references: their key is built the same way
    actor = _login(item.get("actor") or item.get("author"))
    out["actor"] = actor
    if typename == "IssueComment":
        out.update(
            id=item.get("databaseId"),
            user=actor,
            body=item.get("body"),
            html_url=item.get("url"),
            updated_at=item.get("updatedAt"),
            author_association=item.get("authorAssociation"),
        )
    elif typename == "ClosedEvent":
        closer = item.get("closer") or {}
        out["commit_id"] = closer.get("oid") if closer.get("__typename") == "Commit" else None
        out["state_reason"] = _lower(item.get("stateReason"))
    elif typename == "ReferencedEvent":
        out["commit_id"] = (item.get("commit") or {}).get("oid")
    elif typename == "CrossReferencedEvent":
        out["updated_at"] = item.get("createdAt")
        out["source"] = _source_json(item.get("source") or {})
    elif typename in ("LabeledEvent", "UnlabeledEvent"):
        out["label"] = item.get("label")
    out["graphql"] = item
    return out


def split_repo(full_name: str) -> tuple[str, str]:
    owner, name = full_name.split("/", 1)
    return owner, name
