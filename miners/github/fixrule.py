"""The study's "fixed" rule as versioned data: which timeline events link an issue to a fix.

An issue is fix-linked when its timeline has a `closed` or `referenced` event with a commit id, a
`cross-referenced` event whose source is a closed issue/PR in the same project family, or a `connected`
event. Each version is immutable; a changed rule gets a new version and is re-evaluated from the stored
events (`interop issues relink`), with no re-mining.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from db.errors import InteropError
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION
from db.versioned import pick_version

BUILTIN_RULES: dict[str, dict[str, Any]] = {
    DEFAULT_FIX_RULE_VERSION: {
        "closed_with_commit": True,
        "referenced_with_commit": True,
        "cross_referenced_closed_same_family": True,
        "connected": True,
        "family": "owner",
        "family_repos": [],
    },
}


class RuleError(InteropError):
    """An unknown rule version or a malformed rule definition."""


@dataclass(frozen=True)
class FixRule:
    """Parameters of one rule version; `family` is "owner" (same GitHub owner) or "repo" (same repository),
    `family_repos` lists further repositories counted as the same project family."""

    version: str
    closed_with_commit: bool = True
    referenced_with_commit: bool = True
    cross_referenced_closed_same_family: bool = True
    connected: bool = True
    family: str = "owner"
    family_repos: tuple[str, ...] = field(default_factory=tuple)

    def definition(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        data["family_repos"] = list(self.family_repos)
        return data

    def same_family(self, repo: str, other: str | None) -> bool:
        if not other:
            return False
        repo_l, other_l = repo.lower(), other.lower()
        if repo_l == other_l or other_l in {r.lower() for r in self.family_repos}:
            return True
        return self.family == "owner" and repo_l.split("/")[0] == other_l.split("/")[0]


def rule_from_definition(version: str, definition: Mapping[str, Any]) -> FixRule:
    known = {
        "closed_with_commit",
        "referenced_with_commit",
        "cross_referenced_closed_same_family",
        "connected",
        "family",
        "family_repos",
    }
    unknown = set(definition) - known
    if unknown:
        raise RuleError(f"fix rule {version!r}: unknown field(s) {', '.join(sorted(unknown))}")
    data = dict(definition)
    if data.get("family", "owner") not in ("owner", "repo"):
        raise RuleError(f"fix rule {version!r}: family must be 'owner' or 'repo'")
    data["family_repos"] = tuple(data.get("family_repos") or ())
    return FixRule(version=version, **data)


def load_rule(version: str = DEFAULT_FIX_RULE_VERSION, configured: Mapping[str, Any] | None = None) -> FixRule:
    """A built-in version, or one defined under `[fix_rules.<version>]` in interop.toml."""
    return pick_version(version, configured, BUILTIN_RULES, rule_from_definition, RuleError, "fix rule")


def evaluate(rule: FixRule, repo: str, events: Iterable[Mapping[str, Any]]) -> tuple[bool, list[dict[str, Any]]]:
    """(fix-linked?, evidence) for one issue of `repo` from its timeline events (stored columns)."""
    evidence: list[dict[str, Any]] = []
    for ev in events:
        kind, commit = ev.get("event"), ev.get("commit_id")
        why = None
        if kind == "closed" and commit and rule.closed_with_commit:
            why = "closed by commit"
        elif kind == "referenced" and commit and rule.referenced_with_commit:
            why = "referenced by commit"
        elif (
            kind == "cross-referenced"
            and rule.cross_referenced_closed_same_family
            and ev.get("source_state") == "closed"
            and rule.same_family(repo, ev.get("source_repository"))
        ):
            why = "cross-referenced by closed " + ("PR" if ev.get("source_is_pull_request") else "issue")
        elif kind == "connected" and rule.connected:
            why = "connected"
        if why:
            item: dict[str, Any] = {"event_key": ev.get("event_key"), "event": kind, "why": why}
            if commit:
                item["commit_id"] = commit
            if ev.get("source_repository"):
                item["source"] = f"{ev['source_repository']}#{ev.get('source_number')}"
            evidence.append(item)
    return bool(evidence), evidence
