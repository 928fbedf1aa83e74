"""Named, reproducible issue samples: the same arguments over the same issues draw the same members."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import stored_id
from db.errors import InteropError
from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink


class SampleError(InteropError):
    """A sample cannot be drawn as asked (unknown repository, too few issues, name taken by other args)."""


@dataclass
class SampleResult:
    name: str
    created: bool
    numbers: list[int]
    population: int


def draw_sample(
    engine: Engine,
    *,
    name: str,
    repo: str,
    n: int,
    seed: int,
    fixed_only: bool = False,
    rule_version: str = DEFAULT_FIX_RULE_VERSION,
    label: str | None = None,
    state: str | None = None,
) -> SampleResult:
    """Draw `n` issues of `repo` (optionally only fix-linked under `rule_version`, with `label`, in `state`)
    with `random.Random(seed)` from the population ordered by issue number, and store it under `name`."""
    if n <= 0:
        raise SampleError("--n must be positive")
    rule: dict[str, Any] = {"repo": repo, "n": n, "fixed_only": fixed_only, "label": label, "state": state}
    if fixed_only:
        rule["rule_version"] = rule_version
    with Session(engine) as session:
        existing = session.exec(select(IssueSample).where(IssueSample.name == name)).first()
        if existing is not None:
            stored_args = {k: v for k, v in existing.rule.items() if k in rule}
            if stored_args != rule or existing.seed != seed:
                raise SampleError(
                    f"sample {name!r} already exists with other arguments "
                    f"({_describe(existing.rule, existing.seed)}); choose another --name"
                )
            members = session.exec(
                select(Issue.number)
                .join(IssueSampleMember, col(IssueSampleMember.issue_id) == col(Issue.id))
                .where(IssueSampleMember.sample_id == existing.id)
                .order_by(col(IssueSampleMember.position))
            ).all()
            return SampleResult(name, False, list(members), int(existing.rule.get("population", 0)))
        repo_row = session.exec(select(Repository).where(Repository.full_name == repo)).first()
        if repo_row is None:
            raise SampleError(f"repository {repo!r} has not been mined (run `interop mine github --repo {repo}`)")
        stmt = select(Issue.id, Issue.number, Issue.labels).where(Issue.repository_id == repo_row.id)
        stmt = stmt.where(Issue.hydrated == True)  # noqa: E712
        if state:
            stmt = stmt.where(Issue.state == state)
        if fixed_only:
            stmt = stmt.join(IssueFixLink, col(IssueFixLink.issue_id) == col(Issue.id)).where(
                IssueFixLink.rule_version == rule_version,
                IssueFixLink.fix_linked == True,  # noqa: E712
            )
        rows = [
            (i, num)
            for i, num, labels in session.exec(stmt.order_by(col(Issue.number))).all()
            if i is not None and (label is None or label in (labels or []))
        ]
        if len(rows) < n:
            raise SampleError(f"only {len(rows)} issue(s) match ({_describe(rule, seed)}); lower --n")
        picked = random.Random(seed).sample(rows, n)
        digest = hashlib.sha256(",".join(str(num) for _, num in rows).encode()).hexdigest()[:16]
        sample = IssueSample(name=name, seed=seed, rule={**rule, "population": len(rows), "population_sha": digest})
        session.add(sample)
        session.flush()
        for position, (issue_id, _num) in enumerate(picked):
            session.add(IssueSampleMember(sample_id=stored_id(sample), issue_id=issue_id, position=position))
        session.commit()
        return SampleResult(name, True, [num for _, num in picked], len(rows))


def _describe(rule: dict[str, Any], seed: int | None) -> str:
    parts = [f"repo={rule.get('repo')}", f"n={rule.get('n')}", f"seed={seed}"]
    for key in ("fixed_only", "rule_version", "label", "state"):
        if rule.get(key):
            parts.append(f"{key}={rule[key]}")
    return ", ".join(parts)
