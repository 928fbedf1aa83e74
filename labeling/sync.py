"""Push a sample to Label Studio (one project per coder and round: blind coding) and pull codings back.

Every request goes through `LabelStudioClient` (shapes checked); each command is one database transaction, so a
failure stores nothing: a round exists once its push succeeded, and a pull's cursors move only with its data."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.engine import session_scope
from db.ingest import RunLog, recorded_run
from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.ingest import IngestRun
from db.models.labeling import Coder, Coding, LabelItem, LabelRound, LsProject, LsTask
from labeling.client import LabelStudioClient, LabelStudioError, User, newest
from labeling.labelstudio import check_result, instructions, labeling_config
from labeling.projects import ProjectSync, task_data
from labeling.store import (
    CodingEntry,
    LabelingError,
    LoadedCodebook,
    bulk_upsert_codings,
    codebook_for_round,
    ensure_coder,
    ensure_issue_item,
    ensure_round,
    get_round,
    round_codebook,
)

CODER_EMAIL_DOMAIN = "coders.interop.local"
# A pull sees every write committed before its first request; the next pull re-reads tasks updated after
# (server time of that request − slack): the slack covers writes in flight and the Date header's 1 s resolution.
WATERMARK_SLACK = timedelta(seconds=2)


@dataclass
class PushReport:
    round: str
    projects: dict[str, int] = field(default_factory=dict)  # coder -> LS project id
    created_projects: int = 0
    updated_configs: int = 0
    tasks_new: dict[str, int] = field(default_factory=dict)
    tasks_total: dict[str, int] = field(default_factory=dict)
    adopted: int = 0
    overlap_items: int = 0
    items: int = 0
    requests: int = 0
    created_users: list[str] = field(default_factory=list)
    removed_projects: list[int] = field(default_factory=list)  # left by a failed push with other coders
    kept_projects: list[str] = field(default_factory=list)  # such projects someone annotated in: not deleted


@dataclass
class PullReport:
    rounds: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    invalid: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


# --- push ---------------------------------------------------------------------------------------------------------


def _parse_coders(spec: str) -> list[tuple[str, str | None]]:
    """`alice,bob` or `alice=alice@lab.org,bob`: names with optional e-mail of their Label Studio user."""
    out: list[tuple[str, str | None]] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, _, email = part.partition("=")
        out.append((name.strip(), email.strip() or None))
    names = [n for n, _ in out]
    if not names:
        raise LabelingError("--coders needs at least one coder name")
    if len(set(names)) != len(names):
        raise LabelingError(f"--coders names a coder twice: {spec}")
    return out


def _sample_issues(session: Session, sample: str) -> tuple[IssueSample, list[tuple[Issue, str]]]:
    row = session.exec(select(IssueSample).where(IssueSample.name == sample)).first()
    if row is None:
        known = ", ".join(sorted(s.name for s in session.exec(select(IssueSample)).all())) or "none"
        raise LabelingError(f"no issue sample named {sample!r} (samples: {known})")
    rows = session.exec(
        select(Issue, Repository.full_name)
        .join(IssueSampleMember, col(IssueSampleMember.issue_id) == col(Issue.id))
        .join(Repository, col(Repository.id) == col(Issue.repository_id))
        .where(IssueSampleMember.sample_id == row.id)
        .order_by(col(IssueSampleMember.position))
    ).all()
    if not rows:
        raise LabelingError(f"issue sample {sample!r} has no members")
    return row, [(issue, name) for issue, name in rows]


def assign(
    items: list[int], coders: list[str], overlap: float, per_item: int, seed: int, existing: dict[int, set[str]]
) -> dict[int, set[str]]:
    """Which coders code which item: `overlap` of all items go to `per_item` coders, the rest to one, balanced by
    load; items assigned earlier keep their coders (re-push never reshuffles)."""
    load = {c: 0 for c in coders}
    for who in existing.values():
        for c in who:
            if c in load:
                load[c] += 1
    target_overlap = math.ceil(overlap * len(items) - 1e-9)
    overlapped = sum(1 for who in existing.values() if len(who) > 1)
    fresh = [i for i in items if i not in existing]
    random.Random(seed).shuffle(fresh)
    out = {i: set(w) for i, w in existing.items()}
    order = {c: n for n, c in enumerate(coders)}
    for item in fresh:
        k = per_item if overlapped < target_overlap else 1
        if k > 1:
            overlapped += 1
        chosen = sorted(coders, key=lambda c: (load[c], order[c]))[:k]
        for c in chosen:
            load[c] += 1
        out[item] = set(chosen)
    return out


def _ensure_user(
    client: LabelStudioClient, coder: Coder, email: str | None, users: list[User], report: PushReport
) -> int:
    """The LS user for a coder: matched by e-mail or username, else created through the API."""
    wanted = (email or coder.email or f"{coder.name}@{CODER_EMAIL_DOMAIN}").lower()
    for u in users:
        if (u.email or "").lower() == wanted or (u.username or "") == coder.name:
            coder.email = u.email or wanted
            return u.id
    user = client.create_user(coder.name, wanted)
    users.append(user)
    report.created_users.append(f"{coder.name} <{wanted}>")
    coder.email = wanted
    return user.id


def _round_uid(engine: Engine, round_name: str) -> tuple[str, bool]:
    """The uid naming the round's projects, and whether projects may carry it already: the round's own; for a
    round not recorded yet, the uid an earlier (failed) attempt to push it used, so its projects are reused or
    removed instead of duplicated; else a new one."""
    with Session(engine) as session:
        rnd = session.exec(select(LabelRound).where(LabelRound.name == round_name)).first()
        if rnd is not None:
            return str(rnd.params.get("uid", rnd.id)), True
        runs = session.exec(
            select(col(IngestRun.parameters))
            .where(col(IngestRun.kind) == "label-push")
            .order_by(col(IngestRun.id).desc())
        ).all()
    for params in runs:
        if params.get("round") == round_name and params.get("uid"):
            return str(params["uid"]), True
    return uuid.uuid4().hex[:8], False


def push(
    engine: Engine,
    client: LabelStudioClient,
    sample: str,
    round_name: str,
    coders_spec: str,
    overlap: float = 1.0,
    per_item: int | None = None,
    seed: int | None = None,
    codebook: str | None = None,
) -> PushReport:
    """Create/update one project per coder and import each coder's tasks in batches of ≤ 1,000, recording
    project and task ids, all in one transaction: the round is recorded only when the whole push succeeded.
    A re-push only adds what is missing; a retry after a failure reuses what reached Label Studio."""
    if not 0.0 <= overlap <= 1.0:
        raise LabelingError(f"--overlap must be between 0 and 1, not {overlap}")
    coders_in = _parse_coders(coders_spec)
    names = [n for n, _ in coders_in]
    per_item = per_item or len(names)
    if not 1 <= per_item <= len(names):
        raise LabelingError(f"--per-item must be between 1 and the number of coders ({len(names)})")
    if overlap > 0 and per_item < 2 and len(names) > 1:
        raise LabelingError("an overlap needs --per-item of at least 2")
    report = PushReport(round=round_name)
    start = client.request_count
    uid, known_uid = _round_uid(engine, round_name)
    params = {"run": "label-push", "sample": sample, "round": round_name, "coders": names, "overlap": overlap}
    old: LabelRound | None = None
    with recorded_run(engine, "label-push", {**params, "uid": uid}) as log:
        try:
            with session_scope(engine) as session:
                sample_row, issues = _sample_issues(session, sample)
                book = codebook_for_round(session, round_name, codebook)
                seed = seed if seed is not None else (sample_row.seed or 0)
                round_params = {"coders": names, "overlap": overlap, "per_item": per_item, "seed": seed}
                old = session.exec(select(LabelRound).where(LabelRound.name == round_name)).first()
                if old is not None and {k: old.params.get(k) for k in round_params} != round_params:
                    raise LabelingError(
                        f"round {round_name!r} was pushed with coders {','.join(old.params.get('coders', []))}, "
                        f"overlap {old.params.get('overlap')}, per-item {old.params.get('per_item')}, seed "
                        f"{old.params.get('seed')}: push with the same settings or start a new round"
                    )
                rnd = ensure_round(
                    session, round_name, book, "labelstudio", sample_row.id, {**round_params, "uid": uid}
                )
                projects = ProjectSync(client, session, rnd, search=known_uid)
                _push_round(projects, book, issues, coders_in, per_item, overlap, seed, report, log)
                if old is None and known_uid:
                    report.removed_projects, report.kept_projects = projects.remove_orphans(set(names))
        except LabelStudioError as exc:
            what = "the round was not recorded" if old is None else "nothing was recorded"
            raise exc.with_context(f"{what}; pushing again reuses what reached Label Studio") from None
    report.requests = client.request_count - start
    return report


def _push_round(
    projects: ProjectSync,
    book: LoadedCodebook,
    issues: list[tuple[Issue, str]],
    coders_in: list[tuple[str, str | None]],
    per_item: int,
    overlap: float,
    seed: int,
    report: PushReport,
    log: RunLog,
) -> None:
    session, client = projects.session, projects.client
    names = [n for n, _ in coders_in]
    items = [(ensure_issue_item(session, issue, full_name), issue, full_name) for issue, full_name in issues]
    report.items = len(items)
    item_by_ref = {it.ref: it.id or 0 for it, _, _ in items}
    coder_rows = {n: ensure_coder(session, n) for n in names}
    users = client.users()
    for name, email in coders_in:
        coder = coder_rows[name]
        coder.ls_user_id = _ensure_user(client, coder, email, users, report)
        session.add(coder)
    config, instruction = labeling_config(book.spec), instructions(book.spec)
    rows = {name: projects.ensure(coder_rows[name], "coding", config, instruction) for name in names}
    report.projects = {name: row.ls_project_id for name, row in rows.items()}
    known = {name: projects.known_tasks(row, item_by_ref) for name, row in rows.items()}
    existing: dict[int, set[str]] = defaultdict(set)
    for name, tasks in known.items():
        for item_id in tasks:
            existing[item_id].add(name)
    plan = assign([it.id or 0 for it, _, _ in items], names, overlap, per_item, seed, dict(existing))
    report.overlap_items = sum(1 for who in plan.values() if len(who) > 1)
    for name, row in rows.items():
        todo = [
            (it.id or 0, task_data(issue, fn, it))
            for it, issue, fn in items
            if name in plan[it.id or 0] and (it.id or 0) not in known[name]
        ]
        report.tasks_new[name] = projects.import_tasks(row, todo, known[name])
        report.tasks_total[name] = len(known[name])
        log.add("tasks_new", len(todo))
    report.created_projects, report.updated_configs = projects.created, projects.updated
    report.adopted = projects.adopted_tasks


# --- pull ---------------------------------------------------------------------------------------------------------


def pull(engine: Engine, client: LabelStudioClient, round_name: str | None = None, full: bool = False) -> PullReport:
    """Fetch tasks changed since the last pull (all with `full`), check every annotation against the round's
    codebook, and upsert codings; invalid ones are kept as invalid with their problems. One transaction: an
    answer the client cannot vouch for stores nothing and leaves every "last pulled" time where it was."""
    report = PullReport()
    start = client.request_count
    with recorded_run(engine, "label-pull", {"round": round_name, "full": full}) as log:
        try:
            with session_scope(engine) as session:
                rounds = (
                    [get_round(session, round_name)]
                    if round_name
                    else list(session.exec(select(LabelRound).where(LabelRound.source == "labelstudio")).all())
                )
                if not rounds:
                    raise LabelingError("no Label Studio round yet: push one with `interop label push`")
                for rnd in rounds:
                    report.rounds.append(rnd.name)
                    book = round_codebook(session, rnd)
                    projects = session.exec(
                        select(LsProject).where(LsProject.round_id == rnd.id, LsProject.purpose == "coding")
                    ).all()
                    for project in projects:
                        _pull_project(client, session, rnd, book, project, full, report)
        except LabelStudioError as exc:
            raise exc.with_context("nothing was stored and no last-pulled time moved") from None
        for key, n in report.counts.items():
            log.add(key, n)
    report.requests = client.request_count - start
    return report


def _pull_project(
    client: LabelStudioClient,
    session: Session,
    rnd: LabelRound,
    book: LoadedCodebook,
    project: LsProject,
    full: bool,
    report: PullReport,
) -> None:
    coder = session.get(Coder, project.coder_id)
    if coder is None:
        return
    task_items = {
        t.ls_task_id: t.item_id for t in session.exec(select(LsTask).where(LsTask.project_id == project.id)).all()
    }
    listing = client.tasks(project.ls_project_id, None if full else project.last_pulled_at)
    current = {
        c.item_id: c
        for c in session.exec(select(Coding).where(Coding.round_id == rnd.id, Coding.coder_id == coder.id)).all()
    }
    entries: list[CodingEntry] = []
    for task in listing.tasks:
        report.counts["tasks_read"] += 1
        item_id = task_items.get(task.id)
        if item_id is None:
            report.counts["tasks_unknown"] += 1
            continue
        live = task.live_annotations
        report.counts["skipped"] += len(task.annotations) - len(live)
        ann = newest(live)
        if ann is None:
            existing = current.get(item_id)
            if existing is not None and existing.ls_annotation_id is not None:
                session.delete(existing)
                report.counts["removed"] += 1
            continue
        report.counts["superseded"] += len(live) - 1
        checked = check_result(ann.result, book.spec)
        problems = list(checked.problems)
        author = ann.completed_by
        if coder.ls_user_id is not None and author not in (coder.ls_user_id, None):
            problems.insert(
                0,
                f"completed by Label Studio user {author}, not {coder.name} "
                f"(user {coder.ls_user_id}) whose project this is",
            )
        valid = not problems
        values = {book.dimension_ids[k]: book.code_ids[(k, v)] for k, v in checked.codes.items()} if valid else {}
        entries.append(
            CodingEntry(
                item_id,
                values,
                valid,
                problems,
                dict(
                    note=checked.note,
                    ls_task_id=task.id,
                    ls_annotation_id=ann.id,
                    result=ann.result,
                    created_at=ann.created_at,
                    updated_at=ann.updated_at,
                    source_ref=f"labelstudio project {project.ls_project_id} task {task.id} annotation {ann.id}",
                ),
            )
        )
        if not valid:
            report.counts["invalid"] += 1
            item = session.get(LabelItem, item_id)
            report.invalid.append(
                {
                    "round": rnd.name,
                    "coder": coder.name,
                    "item": item.ref if item else item_id,
                    "ls_task_id": task.id,
                    "ls_annotation_id": ann.id,
                    "problems": problems,
                }
            )
    session.flush()
    for state in bulk_upsert_codings(session, rnd.id or 0, coder.id or 0, entries).values():
        report.counts[state] += 1
    if listing.server_time is not None:
        # not past the newest write seen: a server clock behind the tasks' stamps must not skip them
        candidate = listing.server_time - WATERMARK_SLACK
        newest_seen = max((t.updated_at for t in listing.tasks), default=None)
        project.last_pulled_at = min(candidate, newest_seen) if newest_seen is not None else candidate
        session.add(project)
