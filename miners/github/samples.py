"""Named, reproducible issue samples: the same arguments over the same issues draw the same members."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import stored_id
from db.errors import InteropError
from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink
from db.models.labeling import Coding, LabelItem, LabelRound


class SampleError(InteropError):
    """A sample cannot be drawn as asked (unknown repository, too few issues, name taken by other args)."""


#: Rule keys added after the first samples were stored, with the value an older sample's rule meant.
LATER_KEYS: dict[str, Any] = {"from_round": None, "mined_only": False}


@dataclass
class SampleResult:
    name: str
    created: bool
    numbers: list[int]
    population: int
    refs: list[str] = field(default_factory=list)  # owner/name#number of each member, in drawn order


def _same_rule(stored: dict[str, Any], rule: dict[str, Any]) -> bool:
    """The stored rule asks for the same issues (keys an older sample lacks count as their default)."""
    return all(stored.get(k, LATER_KEYS.get(k)) == v for k, v in rule.items())


def _round_id(session: Session, name: str) -> int:
    row = session.exec(select(LabelRound).where(LabelRound.name == name)).first()
    if row is None:
        known = ", ".join(sorted(r.name for r in session.exec(select(LabelRound)).all())) or "none"
        raise SampleError(f"no round named {name!r} to sample from (known rounds: {known})")
    return stored_id(row)


def draw_sample(
    engine: Engine,
    *,
    name: str,
    repo: str | None = None,
    n: int,
    seed: int,
    fixed_only: bool = False,
    rule_version: str = DEFAULT_FIX_RULE_VERSION,
    label: str | None = None,
    state: str | None = None,
    from_round: str | None = None,
    mined_only: bool = False,
) -> SampleResult:
    """Draw `n` issues of `repo` and/or of the items coded in round `from_round` (optionally only fix-linked under
    `rule_version`, with `label`, in `state`, only mined ones) with `random.Random(seed)` from the population
    ordered by repository and issue number, and store it under `name`. Issues known only by URL (from coding
    sheets) are eligible unless `mined_only`; the state, label and fix filters need mined issues."""
    if n <= 0:
        raise SampleError("--n must be positive")
    if repo is None and from_round is None:
        raise SampleError("name the population: --repo OWNER/NAME, --from-round ROUND, or both")
    rule: dict[str, Any] = {"repo": repo, "n": n, "fixed_only": fixed_only, "label": label, "state": state}
    if fixed_only:
        rule["rule_version"] = rule_version
    rule["from_round"] = from_round
    rule["mined_only"] = mined_only
    with Session(engine) as session:
        existing = session.exec(select(IssueSample).where(IssueSample.name == name)).first()
        if existing is not None:
            if not _same_rule(existing.rule, rule) or existing.seed != seed:
                raise SampleError(
                    f"sample {name!r} already exists with other arguments "
                    f"({_describe(existing.rule, existing.seed)}); choose another --name"
                )
            members = session.exec(
                select(Issue.number, Repository.full_name)
                .join(IssueSampleMember, col(IssueSampleMember.issue_id) == col(Issue.id))
                .join(Repository, col(Repository.id) == col(Issue.repository_id))
                .where(IssueSampleMember.sample_id == existing.id)
                .order_by(col(IssueSampleMember.position))
            ).all()
            return SampleResult(
                name,
                False,
                [num for num, _ in members],
                int(existing.rule.get("population", 0)),
                [f"{full}#{num}" for num, full in members],
            )
        stmt = select(Issue.id, Issue.number, Issue.labels, Repository.full_name).join(
            Repository, col(Repository.id) == col(Issue.repository_id)
        )
        if repo is not None:
            repo_row = session.exec(select(Repository).where(Repository.full_name == repo)).first()
            if repo_row is None:
                raise SampleError(f"repository {repo!r} has not been mined (run `interop mine github --repo {repo}`)")
            stmt = stmt.where(Issue.repository_id == repo_row.id)
        if from_round is not None:
            coded = (
                select(LabelItem.issue_id)
                .join(Coding, col(Coding.item_id) == col(LabelItem.id))
                .where(Coding.round_id == _round_id(session, from_round), col(LabelItem.issue_id).is_not(None))
            )
            stmt = stmt.where(col(Issue.id).in_(coded))
        if mined_only:
            stmt = stmt.where(Issue.hydrated == True)  # noqa: E712
        if state:
            stmt = stmt.where(Issue.state == state)
        if fixed_only:
            stmt = stmt.join(IssueFixLink, col(IssueFixLink.issue_id) == col(Issue.id)).where(
                IssueFixLink.rule_version == rule_version,
                IssueFixLink.fix_linked == True,  # noqa: E712
            )
        rows = [
            (i, num, full)
            for i, num, labels, full in session.exec(stmt.order_by(col(Repository.full_name), col(Issue.number))).all()
            if i is not None and (label is None or label in (labels or []))
        ]
        if len(rows) < n:
            raise SampleError(f"only {len(rows)} issue(s) match ({_describe(rule, seed)}); lower --n")
        picked = random.Random(seed).sample(rows, n)
        # the population's fingerprint: issue numbers alone for one repository (as samples always had)
        keys = [str(num) if repo is not None and from_round is None else f"{full}#{num}" for _, num, full in rows]
        digest = hashlib.sha256(",".join(keys).encode()).hexdigest()[:16]
        sample = IssueSample(name=name, seed=seed, rule={**rule, "population": len(rows), "population_sha": digest})
        session.add(sample)
        session.flush()
        for position, (issue_id, _num, _full) in enumerate(picked):
            session.add(IssueSampleMember(sample_id=stored_id(sample), issue_id=issue_id, position=position))
        session.commit()
        return SampleResult(
            name, True, [num for _, num, _ in picked], len(rows), [f"{full}#{num}" for _, num, full in picked]
        )


def _describe(rule: dict[str, Any], seed: int | None) -> str:
    parts = [f"repo={rule.get('repo')}", f"n={rule.get('n')}", f"seed={seed}"]
    for key in ("fixed_only", "rule_version", "label", "state", "from_round", "mined_only"):
        if rule.get(key):
            parts.append(f"{key}={rule[key]}")
    return ", ".join(parts)
