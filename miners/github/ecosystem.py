"""Repository snapshots of the ONNX ecosystem (`interop mine repos`): stars, forks, open issues, releases and
whether ONNX is named, for a list of repositories, one GraphQL request per batch of up to 20 repositories.

A `db.mining.Miner` without a cursor: every run stores one dated `repo_snapshot` row per listed repository
(a second run the same day adds a second snapshot, so the history has one point per run); a repository GitHub
does not know is stored as not found, and the other repositories of its batch are stored as usual.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.errors import InteropError
from db.ingest import RunLog
from db.mining import Batch
from db.models.ecosystem import RepoSnapshot
from db.types import utcnow
from miners.github.client import GitHubClient, GitHubResponseError

#: The list `interop mine repos` reads without `--list`.
DEFAULT_LIST = Path(__file__).with_name("ecosystem.toml")
BATCH_SIZE = 10  # repositories per GraphQL request (each asks for 20 releases and 100 labels: cost stays 1)
MAX_BATCH = 20
_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

REPO_FIELDS = (
    "nameWithOwner stargazerCount forkCount watchers { totalCount } issues(states: OPEN) { totalCount } "
    "pullRequests(states: OPEN) { totalCount } defaultBranchRef { name } licenseInfo { spdxId } "
    "primaryLanguage { name } repositoryTopics(first: 20) { nodes { topic { name } } } description "
    "releases(first: 20, orderBy: {field: CREATED_AT, direction: DESC}) { nodes { tagName publishedAt } } "
    "labels(first: 100) { nodes { name } }"
)


def repos_query(count: int) -> str:
    """One query for `count` repositories (aliases r0…, owners and names as variables o0/n0…)."""
    params = ", ".join(f"$o{k}: String!, $n{k}: String!" for k in range(count))
    parts = " ".join(f"r{k}: repository(owner: $o{k}, name: $n{k}) {{ {REPO_FIELDS} }}" for k in range(count))
    return f"query RepoBatch({params}) {{ rateLimit {{ cost remaining resetAt }} {parts} }}"


def load_list(path: Path | None = None) -> list[tuple[str, str]]:
    """(owner/name, role) pairs of a list file's `[repos]` table (role = key), first mention kept; a bad file
    is one error naming the file and the field."""
    path = path or DEFAULT_LIST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InteropError(f"cannot read repository list {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InteropError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("repos")
    if not isinstance(table, dict) or not table:
        raise InteropError(f'{path}: needs a [repos] table, e.g. converter = ["onnx/tensorflow-onnx"]')
    out: dict[str, tuple[str, str]] = {}
    for role, names in table.items():
        if not isinstance(names, list) or not names:
            raise InteropError(f"{path}: repos.{role} must be a non-empty list of owner/name strings")
        if len(role) > 32:
            raise InteropError(f"{path}: repos.{role}: a role name has at most 32 characters")
        for i, name in enumerate(names, 1):
            if not isinstance(name, str) or not _NAME.match(name.strip()):
                raise InteropError(f"{path}: repos.{role} entry {i} must be owner/name, got {name!r}")
            out.setdefault(name.strip().lower(), (name.strip(), role))
    return list(out.values())


def _nodes(connection: Any) -> list[dict[str, Any]]:
    nodes = (connection or {}).get("nodes") if isinstance(connection, dict) else None
    return [n for n in nodes or [] if isinstance(n, dict)]


def _total(connection: Any) -> int | None:
    return connection.get("totalCount") if isinstance(connection, dict) else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def mentions_onnx(topics: list[str], description: str | None, labels: list[str]) -> bool:
    """ONNX named in a topic, the description or a label (onnx, onnxruntime, module: onnx, "… ONNX …")."""
    return any("onnx" in text.lower() for text in [*topics, description or "", *labels])


def snapshot_fields(node: dict[str, Any]) -> dict[str, Any]:
    """The `repo_snapshot` columns of one answered repository (the node kept as `raw`)."""
    topics = [str(n["topic"]["name"]) for n in _nodes(node.get("repositoryTopics")) if n.get("topic")]
    labels = [str(n["name"]) for n in _nodes(node.get("labels")) if n.get("name")]
    releases = [{"tag": n.get("tagName"), "published_at": n.get("publishedAt")} for n in _nodes(node.get("releases"))]
    newest = max(releases, key=lambda r: r["published_at"] or "", default=None)
    description = node.get("description")
    return {
        "stars": node.get("stargazerCount"),
        "forks": node.get("forkCount"),
        "watchers": _total(node.get("watchers")),
        "open_issues": _total(node.get("issues")),
        "open_prs": _total(node.get("pullRequests")),
        "default_branch": (node.get("defaultBranchRef") or {}).get("name"),
        "license": (node.get("licenseInfo") or {}).get("spdxId"),
        "language": (node.get("primaryLanguage") or {}).get("name"),
        "description": description,
        "topics": topics,
        "releases": releases,
        "latest_release": newest["tag"] if newest else None,
        "latest_release_at": _time(newest["published_at"]) if newest else None,
        "onnx": mentions_onnx(topics, description, labels),
        "raw": node,
    }


#: What one item of a batch is: (owner/name, role, the answered node or None when GitHub has no such repository).
Item = tuple[str, str | None, dict[str, Any] | None]


class RepoSnapshotMiner:
    """The `db.mining.Miner` of one snapshot run over a repository list (no cursor: each run is a snapshot)."""

    kind = "repos-snapshot"

    def __init__(
        self,
        engine: Engine,
        client: GitHubClient,
        repos: list[tuple[str, str | None]],
        batch_size: int = BATCH_SIZE,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise InteropError(f"--batch-size must be between 1 and {MAX_BATCH}, got {batch_size}")
        self.engine, self.client, self.repos, self.batch_size = engine, client, repos, batch_size
        self.extra = parameters or {}
        self.taken_at = utcnow()

    def parameters(self) -> dict[str, Any]:
        return {"repos": [name for name, _ in self.repos], "batch_size": self.batch_size, **self.extra}

    @contextmanager
    def opened(self, run: RunLog) -> Iterator[None]:
        """The client's requests, retries and waits during the run are added to its counts, however it ends."""
        start = self.client.stats.__dict__.copy()
        for key in ("repos_found", "repos_not_found", "repos_onnx"):
            run.counts.setdefault(key, 0)
        try:
            yield
        finally:
            for key in ("requests", "retries", "rate_limit_waits", "graphql_cost"):
                run.counts[key] = getattr(self.client.stats, key) - start[key]

    def fetch(self, run: RunLog) -> Iterator[Batch[Item, None]]:
        """One GraphQL request per `batch_size` repositories; a repository GitHub does not know comes back None."""
        for at in range(0, len(self.repos), self.batch_size):
            chunk = self.repos[at : at + self.batch_size]
            variables: dict[str, Any] = {}
            for k, (name, _) in enumerate(chunk):
                variables[f"o{k}"], variables[f"n{k}"] = name.split("/", 1)
            what = f"repository metadata of {', '.join(n for n, _ in chunk)}"
            answer = self.client.graphql(repos_query(len(chunk)), variables, what, not_found_ok=True)
            items: list[Item] = []
            for k, (name, role) in enumerate(chunk):
                node = answer.data.get(f"r{k}")
                if node is not None and not isinstance(node, dict):
                    raise GitHubResponseError(f"{name} in {what} cannot be read (not an object)")
                items.append((name, role, node))
            yield Batch(items, final=at + self.batch_size >= len(self.repos))

    def load(self, batch: Batch[Item, None], run: RunLog) -> None:
        """One snapshot row per repository of the batch, in one transaction."""
        rows = []
        for name, role, node in batch.items:
            base: dict[str, Any] = {"run_id": run.id, "full_name": name, "role": role, "taken_at": self.taken_at}
            base["snapshot_date"] = self.taken_at.date()
            if node is None:
                rows.append(RepoSnapshot(**base, found=False))
                run.add("repos_not_found")
                run.parameters.setdefault("not_found", []).append(name)
                continue
            try:
                fields = snapshot_fields(node)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise GitHubResponseError(f"repository {name} cannot be read ({exc!r})") from exc
            rows.append(RepoSnapshot(**base, found=True, **fields))
            run.add("repos_found")
            run.add("repos_onnx", int(fields["onnx"]))
        with Session(self.engine) as session:
            session.add_all(rows)
            session.commit()


def snapshot_repos(
    engine: Engine,
    client: GitHubClient,
    repos: list[tuple[str, str | None]],
    batch_size: int = BATCH_SIZE,
    parameters: dict[str, Any] | None = None,
) -> RunLog:
    """Snapshot every listed repository as one recorded `repos-snapshot` run."""
    from db.mining import mine

    return mine(engine, RepoSnapshotMiner(engine, client, repos, batch_size, parameters))
