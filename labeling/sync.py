"""Push a sample (issues) or a survey question (free-text answers) to Label Studio: one project per coder and
round (blind coding); labeling/pull.py pulls back.

Every request goes through `LabelStudioClient` (shapes checked); a push is one database transaction, so a
failure stores nothing: a round exists once its push succeeded."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.engine import session_scope
from db.ingest import RunLog, recorded_run
from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.ingest import IngestRun
from db.models.labeling import Coder, LabelItem, LabelRound
from db.queries.issues import issue_discussion
from labeling.client import LabelStudioClient, LabelStudioError, User
from labeling.labelstudio import config_hash, discussion_html, instructions, labeling_config
from labeling.projects import ProjectSync, task_data
from labeling.store import (
    LabelingError,
    LoadedCodebook,
    codebook_for_round,
    ensure_coder,
    ensure_issue_item,
    ensure_round,
)
from labeling.survey_items import answer_task_data, ensure_answer_item, text_answers

CODER_EMAIL_DOMAIN = "coders.interop.local"


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


def _survey_items(session: Session, survey: str, question: str) -> list[tuple[LabelItem, dict[str, Any]]]:
    """The question's free-text answers (included respondents) as items with what a coder sees."""
    answers = text_answers(session, survey, question)
    if not answers:
        raise LabelingError(f"question {question!r} of survey {survey!r} has no free-text answers to code")
    return [(item, answer_task_data(item, a)) for a in answers for item in [ensure_answer_item(session, a)]]


def push(
    engine: Engine,
    client: LabelStudioClient,
    sample: str | None,
    round_name: str,
    coders_spec: str,
    overlap: float = 1.0,
    per_item: int | None = None,
    seed: int | None = None,
    codebook: str | None = None,
    predictions: bool | None = None,
    survey: str | None = None,
    question: str | None = None,
) -> PushReport:
    """Create/update one project per coder and import each coder's tasks in batches of ≤ 1,000, recording
    project and task ids, all in one transaction: the round is recorded only when the whole push succeeded.
    The items are an issue sample's issues, or a survey question's free-text answers (`survey` + `question`).
    A re-push only adds what is missing; a retry after a failure reuses what reached Label Studio. `predictions`:
    whether coders may see model suggestions (`label suggest`); a new round is blind unless True, and a round keeps
    what it was pushed with."""
    if (sample is None) == (survey is None) or (survey is None) != (question is None):
        raise LabelingError("push either an issue sample (--sample) or a survey question (--survey and --question)")
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
    source = {"sample": sample} if sample is not None else {"survey": survey, "question": question}
    params = {"run": "label-push", **source, "round": round_name, "coders": names, "overlap": overlap}
    old: LabelRound | None = None
    with recorded_run(engine, "label-push", {**params, "uid": uid}) as log:
        try:
            with session_scope(engine) as session:
                sample_id: int | None = None
                if sample is not None:
                    sample_row, issues = _sample_issues(session, sample)
                    sample_id = sample_row.id
                    seed = seed if seed is not None else (sample_row.seed or 0)
                    items = [
                        (
                            item,
                            task_data(
                                issue, full_name, item, discussion_html(issue_discussion(session, issue.id or 0))
                            ),
                        )
                        for issue, full_name in issues
                        for item in [ensure_issue_item(session, issue, full_name)]
                    ]
                else:
                    items = _survey_items(session, str(survey), str(question))
                    seed = seed if seed is not None else 0
                book = codebook_for_round(session, round_name, codebook)
                round_params = {"coders": names, "overlap": overlap, "per_item": per_item, "seed": seed}
                old = session.exec(select(LabelRound).where(LabelRound.name == round_name)).first()
                if old is not None and {k: old.params.get(k) for k in round_params} != round_params:
                    raise LabelingError(
                        f"round {round_name!r} was pushed with coders {','.join(old.params.get('coders', []))}, "
                        f"overlap {old.params.get('overlap')}, per-item {old.params.get('per_item')}, seed "
                        f"{old.params.get('seed')}: push with the same settings or start a new round"
                    )
                if old is not None and sample is None and old.params.get("question") not in (None, question):
                    raise LabelingError(
                        f"round {round_name!r} codes question {old.params.get('question')!r}, not {question!r}: "
                        "start a new round"
                    )
                shown = bool(old.params.get("show_predictions")) if old is not None else bool(predictions)
                if old is not None and predictions is not None and predictions != shown:
                    raise LabelingError(
                        f"round {round_name!r} was pushed {'with --predictions' if shown else 'blind'}: a round keeps "
                        "whether its coders see model suggestions; start a new round to change it"
                    )
                extra = {} if sample is not None else {"survey": survey, "question": question}
                rnd = ensure_round(
                    session,
                    round_name,
                    book,
                    "labelstudio",
                    sample_id,
                    {**round_params, **extra, "uid": uid, "show_predictions": shown},
                )
                projects = ProjectSync(client, session, rnd, search=known_uid)
                _push_round(projects, book, items, coders_in, per_item, overlap, seed, report, log)
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
    items: list[tuple[LabelItem, dict[str, Any]]],
    coders_in: list[tuple[str, str | None]],
    per_item: int,
    overlap: float,
    seed: int,
    report: PushReport,
    log: RunLog,
) -> None:
    session, client = projects.session, projects.client
    names = [n for n, _ in coders_in]
    report.items = len(items)
    item_by_ref = {it.ref: it.id or 0 for it, _ in items}
    coder_rows = {n: ensure_coder(session, n) for n in names}
    users = client.users()
    for name, email in coders_in:
        coder = coder_rows[name]
        coder.ls_user_id = _ensure_user(client, coder, email, users, report)
        session.add(coder)
    # issues show their discussion; survey answers have none
    with_discussion = any(it.issue_id is not None for it, _ in items)
    config, instruction = labeling_config(book.spec, discussion=with_discussion), instructions(book.spec)
    # projects pushed before tasks carried the discussion keep their layout (their tasks lack the field)
    legacy = (config_hash(labeling_config(book.spec, discussion=False), instruction),)
    rows = {name: projects.ensure(coder_rows[name], "coding", config, instruction, legacy) for name in names}
    report.projects = {name: row.ls_project_id for name, row in rows.items()}
    known = {name: projects.known_tasks(row, item_by_ref) for name, row in rows.items()}
    existing: dict[int, set[str]] = defaultdict(set)
    for name, tasks in known.items():
        for item_id in tasks:
            existing[item_id].add(name)
    plan = assign([it.id or 0 for it, _ in items], names, overlap, per_item, seed, dict(existing))
    report.overlap_items = sum(1 for who in plan.values() if len(who) > 1)
    for name, row in rows.items():
        todo = [
            (it.id or 0, data) for it, data in items if name in plan[it.id or 0] and (it.id or 0) not in known[name]
        ]
        report.tasks_new[name] = projects.import_tasks(row, todo, known[name])
        report.tasks_total[name] = len(known[name])
        log.add("tasks_new", len(todo))
    report.created_projects, report.updated_configs = projects.created, projects.updated
    report.adopted = projects.adopted_tasks
