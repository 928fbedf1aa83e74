"""Push a sample to Label Studio (one project per coder and round: blind coding) and pull codings back."""

from __future__ import annotations

import html
import json
import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import session_scope
from db.ingest import recorded_run
from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.labeling import Coder, Coding, LabelItem, LabelRound, LsProject, LsTask
from labeling.labelstudio import (
    Connection,
    check_result,
    config_hash,
    instructions,
    labeling_config,
    ls_errors,
)
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

BATCH = 1000  # tasks per import call (the issue's limit; LS takes 250K per call)
PAGE = 1000  # tasks per page when pulling
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
    fresh: set[int] = field(default_factory=set)  # projects created by this push (nothing to reconcile)
    created_users: list[str] = field(default_factory=list)


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
        .join(IssueSampleMember, IssueSampleMember.issue_id == Issue.id)
        .join(Repository, Repository.id == Issue.repository_id)
        .where(IssueSampleMember.sample_id == row.id)
        .order_by(IssueSampleMember.position)
    ).all()
    if not rows:
        raise LabelingError(f"issue sample {sample!r} has no members")
    return row, [(issue, name) for issue, name in rows]


def task_data(issue: Issue, full_name: str, item: LabelItem) -> dict[str, Any]:
    """What a coder sees; field names avoid `id`/`annotator` (they clash in LS exports)."""
    url = issue.html_url or f"https://github.com/{full_name}/issues/{issue.number}"
    body = issue.body or ("(body not mined yet: open the link)" if not issue.hydrated else "(empty)")
    return {
        "item_ref": item.ref,
        "repository": full_name,
        "number": issue.number,
        "title": f"{full_name}#{issue.number}: {issue.title or '(title unknown)'}",
        "body": body,
        "labels": "labels: " + (", ".join(issue.labels) if issue.labels else "none"),
        "link": f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{html.escape(url)}</a>',
    }


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


def _ensure_user(conn: Connection, coder: Coder, email: str | None, users: list[Any], report: PushReport) -> int:
    """The LS user for a coder: matched by e-mail or username, else created through the API."""
    wanted = (email or coder.email or f"{coder.name}@{CODER_EMAIL_DOMAIN}").lower()
    for u in users:
        if (u.email or "").lower() == wanted or (u.username or "") == coder.name:
            coder.email = u.email or wanted
            return int(u.id)
    user = conn.client.users.create(username=coder.name, email=wanted, first_name=coder.name)
    users.append(user)
    report.created_users.append(f"{coder.name} <{wanted}>")
    coder.email = wanted
    return int(user.id)


def _project_title(rnd: LabelRound, coder: str | None) -> str:
    """Unique per round: the round's uid keeps two databases sharing one server apart."""
    return f"{rnd.name} · {coder or 'review'} [{rnd.params.get('uid', rnd.id)}]"


def _ensure_project(
    conn: Connection,
    session: Session,
    rnd: LabelRound,
    coder: Coder | None,
    purpose: str,
    config: str,
    instruction: str,
    existing_projects: list[Any] | None,
    report: PushReport,
) -> tuple[LsProject, list[Any] | None]:
    """Create the project, or adopt one with our title (a push that failed after creating it), or update its
    config when the generated one changed."""
    digest = config_hash(config, instruction)
    row = session.exec(
        select(LsProject).where(
            LsProject.round_id == rnd.id,
            LsProject.purpose == purpose,
            LsProject.coder_id == (coder.id if coder else None),
        )
    ).first()
    title = _project_title(rnd, coder.name if coder else None)
    description = f"Interop Lab round {rnd.name!r}" + (
        f", coder {coder.name}: code only your own project (blind coding)"
        if coder
        else ": adjudicate the coders' disagreements"
    )
    settings = dict(
        label_config=config,
        expert_instruction=instruction,
        show_instruction=True,
        description=description,
        maximum_annotations=1,
        show_skip_button=True,
        enable_empty_annotation=False,
        show_annotation_history=False,
        show_collab_predictions=False,
    )
    if row is None:
        if existing_projects is None:
            existing_projects = list(conn.client.projects.list(page_size=1000))
        match = next((p for p in existing_projects if p.title == title), None)
        if match is None:
            project = conn.client.projects.create(title=title, **settings)
            report.created_projects += 1
        else:
            project = match
            conn.client.projects.update(id=project.id, **settings)
            report.updated_configs += 1
        row = LsProject(
            round_id=rnd.id or 0,
            coder_id=coder.id if coder else None,
            purpose=purpose,
            ls_project_id=int(project.id),
            config_hash=digest,
        )
        session.add(row)
        session.flush()
        if match is None:
            report.fresh.add(row.id or 0)
    elif row.config_hash != digest:
        conn.client.projects.update(id=row.ls_project_id, **settings)
        row.config_hash = digest
        session.add(row)
        report.updated_configs += 1
    return row, existing_projects


def _adopt_tasks(
    conn: Connection, session: Session, project: LsProject, item_by_ref: dict[str, int], known: dict[int, int]
) -> int:
    """Record tasks that exist in LS but not in the database (an earlier push failed after importing)."""
    info = conn.client.projects.get(id=project.ls_project_id)
    if int(getattr(info, "task_number", 0) or 0) <= len(known):
        return 0
    adopted = 0
    for task in conn.client.tasks.list(project=project.ls_project_id, page_size=PAGE):
        ref = (task.data or {}).get("item_ref")
        item_id = item_by_ref.get(ref) if ref else None
        if item_id is None or item_id in known:
            continue
        session.add(LsTask(project_id=project.id or 0, item_id=item_id, ls_task_id=int(task.id)))
        known[item_id] = int(task.id)
        adopted += 1
    session.flush()
    return adopted


def push(
    engine: Engine,
    conn: Connection,
    sample: str,
    round_name: str,
    coders_spec: str,
    overlap: float = 1.0,
    per_item: int | None = None,
    seed: int | None = None,
    codebook: str | None = None,
) -> PushReport:
    """Create/update one project per coder and import each coder's tasks in batches of ≤ 1,000, recording
    project and task ids. The round is declared first (own transaction), everything else is one transaction;
    a re-push only adds what is missing."""
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
    start = conn.request_count
    params = {"run": "label-push", "sample": sample, "round": round_name, "coders": names, "overlap": overlap}
    with recorded_run(engine, "label-push", params) as log:
        # 1. declare the round on its own (committed): its uid names the LS projects, so a push that fails
        #    half-way is reconciled by the next one (projects adopted by title, tasks by item_ref)
        with session_scope(engine) as session:
            sample_row, _ = _sample_issues(session, sample)
            book = codebook_for_round(session, round_name, codebook)
            seed = seed if seed is not None else (sample_row.seed or 0)
            round_params = {"coders": names, "overlap": overlap, "per_item": per_item, "seed": seed}
            rnd = ensure_round(
                session, round_name, book, "labelstudio", sample_row.id, {**round_params, "uid": uuid.uuid4().hex[:8]}
            )
            if {k: rnd.params.get(k) for k in round_params} != round_params:
                raise LabelingError(
                    f"round {round_name!r} was pushed with coders {','.join(rnd.params.get('coders', []))}, "
                    f"overlap {rnd.params.get('overlap')}, per-item {rnd.params.get('per_item')}, seed "
                    f"{rnd.params.get('seed')}: push with the same settings or start a new round"
                )
        # 2. everything else in one transaction
        with session_scope(engine) as session, ls_errors(conn.url):
            _push_round(
                conn, session, get_round(session, round_name), sample, coders_in, per_item, overlap, seed, report, log
            )
    report.requests = conn.request_count - start
    return report


def _push_round(
    conn: Connection,
    session: Session,
    rnd: LabelRound,
    sample: str,
    coders_in: list[tuple[str, str | None]],
    per_item: int,
    overlap: float,
    seed: int,
    report: PushReport,
    log: Any,
) -> None:
    names = [n for n, _ in coders_in]
    book = round_codebook(session, rnd)
    _, issues = _sample_issues(session, sample)
    items: list[tuple[LabelItem, Issue, str]] = []
    for issue, full_name in issues:
        items.append((ensure_issue_item(session, issue, full_name), issue, full_name))
    report.items = len(items)
    item_by_ref = {it.ref: it.id or 0 for it, _, _ in items}
    coder_rows = {n: ensure_coder(session, n) for n in names}
    users = list(conn.client.users.list())
    for name, email in coders_in:
        coder = coder_rows[name]
        coder.ls_user_id = _ensure_user(conn, coder, email, users, report)
        session.add(coder)
    config, instruction = labeling_config(book.spec), instructions(book.spec)
    projects: dict[str, LsProject] = {}
    listing: list[Any] | None = None
    for name in names:
        projects[name], listing = _ensure_project(
            conn, session, rnd, coder_rows[name], "coding", config, instruction, listing, report
        )
        report.projects[name] = projects[name].ls_project_id
    known: dict[str, dict[int, int]] = {}
    for name, project in projects.items():
        rows = session.exec(select(LsTask).where(LsTask.project_id == project.id)).all()
        known[name] = {t.item_id: t.ls_task_id for t in rows}
        if project.id not in report.fresh:
            report.adopted += _adopt_tasks(conn, session, project, item_by_ref, known[name])
    existing: dict[int, set[str]] = defaultdict(set)
    for name, tasks in known.items():
        for item_id in tasks:
            existing[item_id].add(name)
    plan = assign([it.id or 0 for it, _, _ in items], names, overlap, per_item, seed, dict(existing))
    report.overlap_items = sum(1 for who in plan.values() if len(who) > 1)
    for name, project in projects.items():
        todo = [
            (it, issue, fn) for it, issue, fn in items if name in plan[it.id or 0] and (it.id or 0) not in known[name]
        ]
        for b in range(0, len(todo), BATCH):
            batch = todo[b : b + BATCH]
            resp = conn.client.projects.import_tasks(
                id=project.ls_project_id,
                request=[task_data(issue, fn, it) for it, issue, fn in batch],
                return_task_ids=True,
            )
            ids = list(resp.task_ids or [])
            if len(ids) != len(batch):
                raise LabelingError(
                    f"Label Studio created {len(ids)} tasks for {len(batch)} items in project "
                    f"{project.ls_project_id}; run the push again to reconcile"
                )
            for (it, _, _), task_id in zip(batch, ids, strict=True):
                session.add(LsTask(project_id=project.id or 0, item_id=it.id or 0, ls_task_id=int(task_id)))
                known[name][it.id or 0] = int(task_id)
        report.tasks_new[name] = len(todo)
        report.tasks_total[name] = len(known[name])
        log.add("tasks_new", len(todo))
    session.flush()


# --- pull ---------------------------------------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def user_id(value: Any) -> int | None:
    """`completed_by` is an id in task lists but a user object in single-task reads."""
    if isinstance(value, dict):
        value = value.get("id")
    return int(value) if value is not None else None


def _tasks_since(conn: Connection, project_id: int, since: datetime | None) -> list[Any]:
    query = None
    if since is not None:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = json.dumps(
            {
                "filters": {
                    "conjunction": "and",
                    "items": [
                        {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": stamp}
                    ],
                }
            }
        )
    return list(conn.client.tasks.list(project=project_id, fields="all", page_size=PAGE, query=query))


def pull(engine: Engine, conn: Connection, round_name: str | None = None, full: bool = False) -> PullReport:
    """Fetch tasks changed since the last pull (all with `full`), check every annotation against the round's
    codebook, and upsert codings; invalid ones are kept as invalid with their problems. One transaction."""
    report = PullReport()
    start = conn.request_count
    with (
        recorded_run(engine, "label-pull", {"round": round_name, "full": full}) as log,
        session_scope(engine) as session,
        ls_errors(conn.url),
    ):
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
                _pull_project(conn, session, rnd, book, project, full, report)
        for key, n in report.counts.items():
            log.add(key, n)
    report.requests = conn.request_count - start
    return report


def _pull_project(
    conn: Connection,
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
    seen_dates = len(conn.server_dates)
    tasks = _tasks_since(conn, project.ls_project_id, None if full else project.last_pulled_at)
    first_date = conn.server_dates[seen_dates] if len(conn.server_dates) > seen_dates else None
    watermark = None
    current = {
        c.item_id: c
        for c in session.exec(select(Coding).where(Coding.round_id == rnd.id, Coding.coder_id == coder.id)).all()
    }
    entries: list[CodingEntry] = []
    for task in tasks:
        report.counts["tasks_read"] += 1
        updated = _when(getattr(task, "updated_at", None))
        if updated and (watermark is None or updated > watermark):
            watermark = updated
        item_id = task_items.get(int(task.id))
        if item_id is None:
            report.counts["tasks_unknown"] += 1
            continue
        anns = [a if isinstance(a, dict) else a.dict() for a in (task.annotations or [])]
        live = [a for a in anns if not a.get("was_cancelled")]
        report.counts["skipped"] += len(anns) - len(live)
        if not live:
            existing = current.get(item_id)
            if existing is not None and existing.ls_annotation_id is not None:
                session.delete(existing)
                report.counts["removed"] += 1
            continue
        live.sort(key=lambda a: (_when(a.get("updated_at")) or datetime.min.replace(tzinfo=UTC), a.get("id", 0)))
        ann = live[-1]
        report.counts["superseded"] += len(live) - 1
        checked = check_result(ann.get("result"), book.spec)
        problems = list(checked.problems)
        author = user_id(ann.get("completed_by"))
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
                    ls_task_id=int(task.id),
                    ls_annotation_id=int(ann["id"]),
                    result=ann.get("result") or [],
                    created_at=_when(ann.get("created_at")),
                    updated_at=_when(ann.get("updated_at")),
                    source_ref=f"labelstudio project {project.ls_project_id} task {task.id} annotation {ann['id']}",
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
                    "ls_task_id": int(task.id),
                    "ls_annotation_id": int(ann["id"]),
                    "problems": problems,
                }
            )
    session.flush()
    for state in bulk_upsert_codings(session, rnd.id or 0, coder.id or 0, entries).values():
        report.counts[state] += 1
    if first_date is not None:
        # not past the newest write seen: a server clock behind the tasks' stamps must not skip them
        candidate = first_date - WATERMARK_SLACK
        project.last_pulled_at = min(candidate, watermark) if watermark is not None else candidate
        session.add(project)
