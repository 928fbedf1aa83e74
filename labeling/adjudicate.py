"""Final labels of a round: agreement decides automatically; disagreements go to a named rule or to a review
project in Label Studio, and every final label records who or what decided it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import session_scope
from db.ingest import recorded_run
from db.models.github import Issue, Repository
from db.models.labeling import Coder, Coding, CodingValue, FinalLabel, LabelItem, LsProject, LsTask
from labeling.codebook import CodebookSpec
from labeling.labelstudio import Connection, check_result, instructions, labeling_config, ls_errors
from labeling.store import LabelingError, LoadedCodebook, get_round, round_codebook

AGREEMENT = "agreement"
SINGLE = "single-coder"
REVIEW_PREFIX = "review:"


@dataclass
class AdjudicationReport:
    round: str
    counts: Counter[str] = field(default_factory=Counter)
    open_items: list[dict[str, Any]] = field(default_factory=list)
    review_project: int | None = None


def _consistent(codes: dict[str, int], spec: CodebookSpec) -> dict[str, int]:
    """Drop conditional dimensions whose condition the final codes do not meet (conditions may chain)."""
    out = dict(codes)
    changed = True
    while changed:
        changed = False
        for dim in spec.dimensions:
            if dim.required_when and dim.key in out and not dim.applies(out):
                del out[dim.key]
                changed = True
    return out


def _decide(
    item_codes: dict[str, dict[str, int]], spec: CodebookSpec, prefer: str | None, majority: bool, covered: set[str]
) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """Final code and decider per dimension of one item from its coders' codes; unresolved dimensions listed.
    `covered` are the dimensions the round codes at all (a sheet may hold only some)."""
    coders = sorted(item_codes)
    if len(coders) == 1:
        only = coders[0]
        return {k: (v, f"{SINGLE}:{only}") for k, v in item_codes[only].items()}, []
    final: dict[str, tuple[int, str]] = {}
    open_dims: list[str] = []
    for dim in spec.dimensions:
        given = [item_codes[c].get(dim.key) for c in coders]
        if all(g is None for g in given):
            continue
        if len(set(given)) == 1:
            final[dim.key] = (given[0], AGREEMENT)  # type: ignore[assignment]
            continue
        if prefer and prefer in item_codes:
            if dim.key in item_codes[prefer]:
                final[dim.key] = (item_codes[prefer][dim.key], f"rule:prefer-coder={prefer}")
            continue
        if majority:
            counts = Counter(given).most_common()
            if counts[0][0] is not None and (len(counts) == 1 or counts[0][1] > counts[1][1]):
                final[dim.key] = (counts[0][0], "rule:majority")
                continue
        open_dims.append(dim.key)
    kept = _consistent({k: v for k, (v, _) in final.items()}, spec)
    final = {k: final[k] for k in kept}
    # a conditional dimension that now applies but was not settled is open too
    for dim in spec.dimensions:
        if (
            dim.required_when
            and dim.key in covered
            and dim.applies(kept)
            and dim.key not in final
            and dim.key not in open_dims
        ):
            open_dims.append(dim.key)
    return final, open_dims


def _codings(session: Session, round_id: int, book: LoadedCodebook) -> dict[int, dict[str, dict[str, int]]]:
    """item → coder → {dimension: code} of the round's valid codings."""
    key_by_dim = {v: k for k, v in book.dimension_ids.items()}
    code_by_id = book.code_by_id
    out: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    rows = session.exec(
        select(Coding.item_id, Coder.name, CodingValue.dimension_id, CodingValue.code_id)
        .join(Coder, Coder.id == Coding.coder_id)
        .join(CodingValue, CodingValue.coding_id == Coding.id, isouter=True)
        .where(Coding.round_id == round_id, Coding.valid.is_(True))
    ).all()
    for item_id, coder, dim_id, code_id in rows:
        codes = out[item_id].setdefault(coder, {})
        if dim_id is not None:
            codes[key_by_dim[dim_id]] = code_by_id[code_id][1]
    return out


def _assigned(session: Session, round_id: int) -> dict[int, set[str]]:
    """item → coders it was pushed to (Label Studio rounds); an item waits until each has a valid coding."""
    rows = session.exec(
        select(LsTask.item_id, Coder.name)
        .join(LsProject, LsProject.id == LsTask.project_id)
        .join(Coder, Coder.id == LsProject.coder_id)
        .where(LsProject.round_id == round_id, LsProject.purpose == "coding")
    ).all()
    out: dict[int, set[str]] = defaultdict(set)
    for item_id, name in rows:
        out[item_id].add(name)
    return out


def _review_data(
    session: Session, item_id: int, codes: dict[str, dict[str, int]], spec: CodebookSpec, open_dims: list[str]
) -> dict[str, Any]:
    from labeling.sync import task_data

    item = session.get(LabelItem, item_id)
    issue = session.get(Issue, item.issue_id) if item and item.issue_id else None
    if item is None or issue is None:
        raise LabelingError(f"item {item_id} is not an issue: only issues can be reviewed in Label Studio for now")
    repo = session.get(Repository, issue.repository_id)
    data = task_data(issue, repo.full_name if repo else "?", item)
    lines = []
    for coder, given in sorted(codes.items()):
        parts = [f"{k}={v} {spec.dimension(k).codes[v].label}" for k, v in given.items()]
        lines.append(f"{coder}: " + "; ".join(parts))
    data["codings"] = "Disagreement on " + ", ".join(open_dims) + ". Coders: " + " | ".join(lines)
    return data


def _review_config(spec: CodebookSpec) -> str:
    config = labeling_config(spec)
    return config.replace(
        '  <Header value="$title"/>', '  <Header value="$title"/>\n  <Text name="codings" value="$codings"/>', 1
    )


def _pull_review(
    conn: Connection, session: Session, project: LsProject, book: LoadedCodebook
) -> dict[int, tuple[dict[str, int], str]]:
    """item → (codes, reviewer) of valid review annotations (the newest per task)."""
    from labeling.sync import PAGE, _when, user_id

    items = {t.ls_task_id: t.item_id for t in session.exec(select(LsTask).where(LsTask.project_id == project.id))}
    if not items:
        return {}
    users = {int(u.id): (u.username or u.email or str(u.id)) for u in conn.client.users.list()}
    out: dict[int, tuple[dict[str, int], str]] = {}
    for task in conn.client.tasks.list(project=project.ls_project_id, fields="all", page_size=PAGE):
        anns = [a if isinstance(a, dict) else a.dict() for a in (task.annotations or [])]
        anns = [a for a in anns if not a.get("was_cancelled")]
        if not anns or int(task.id) not in items:
            continue
        ann = max(anns, key=lambda a: (_when(a.get("updated_at")), a.get("id", 0)))
        checked = check_result(ann.get("result"), book.spec)
        if checked.valid:
            out[items[int(task.id)]] = (checked.codes, users.get(user_id(ann.get("completed_by")) or 0, "unknown"))
    return out


def adjudicate(
    engine: Engine, round_name: str, prefer: str | None = None, majority: bool = False, conn: Connection | None = None
) -> AdjudicationReport:
    """Write final labels for the round in one transaction. With a connection, open disagreements go to the
    round's review project and reviewers' decisions made there so far become final labels."""
    report = AdjudicationReport(round_name)
    with (
        recorded_run(
            engine,
            "label-adjudicate",
            {"round": round_name, "prefer": prefer, "majority": majority, "review": conn is not None},
        ) as log,
        session_scope(engine) as session,
    ):
        rnd = get_round(session, round_name)
        book = round_codebook(session, rnd)
        codings = _codings(session, rnd.id or 0, book)
        if not codings:
            raise LabelingError(f"round {round_name!r} has no valid codings to adjudicate")
        if prefer and prefer not in {c for item in codings.values() for c in item}:
            raise LabelingError(f"--prefer-coder {prefer!r} has no codings in round {round_name!r}")
        existing = {
            (f.item_id, f.dimension_id): f
            for f in session.exec(select(FinalLabel).where(FinalLabel.round_id == rnd.id)).all()
        }
        review_project = None
        reviewed: dict[int, tuple[dict[str, int], str]] = {}
        if conn is not None:
            with ls_errors(conn.url):
                review_project = _ensure_review_project(conn, session, rnd, book)
                reviewed = _pull_review(conn, session, review_project, book)
            report.review_project = review_project.ls_project_id
        # decisions made by people (review) or taken from the study's sheet stay unless reviewed anew
        kept: dict[int, dict[str, tuple[int, str]]] = defaultdict(dict)
        key_by_dim = {v: k for k, v in book.dimension_ids.items()}
        for (item_id, dim_id), row in existing.items():
            if row.decided_by.startswith(REVIEW_PREFIX) or row.decided_by == "sheet":
                kept[item_id][key_by_dim[dim_id]] = (book.code_by_id[row.code_id][1], row.decided_by)
        covered = {k for item in codings.values() for codes in item.values() for k in codes}
        assigned = _assigned(session, rnd.id or 0)
        to_review: list[tuple[int, list[str]]] = []
        wanted: dict[tuple[int, int], tuple[int, str]] = {}
        for item_id, item_codes in sorted(codings.items()):
            if item_id in reviewed:
                codes, reviewer = reviewed[item_id]
                decided = {k: (v, f"{REVIEW_PREFIX}{reviewer}") for k, v in codes.items()}
                report.counts["items_reviewed"] += 1
                open_dims: list[str] = []
            elif assigned.get(item_id, set()) - set(item_codes):
                waiting = sorted(assigned[item_id] - set(item_codes))
                report.counts["items_waiting"] += 1
                item = session.get(LabelItem, item_id)
                report.open_items.append(
                    {
                        "item": item.ref if item else item_id,
                        "dimensions": [],
                        "coders": {c: dict(v) for c, v in item_codes.items()},
                        "waiting_for": waiting,
                    }
                )
                continue
            elif item_id in kept:
                decided, open_dims = kept[item_id], []
                report.counts["items_kept"] += 1
            else:
                decided, open_dims = _decide(item_codes, book.spec, prefer, majority, covered)
            for key, (code, by) in decided.items():
                wanted[(item_id, book.dimension_ids[key])] = (book.code_ids[(key, code)], by)
                report.counts[by.split(":")[0]] += 1
            if open_dims:
                report.counts["items_open"] += 1
                item = session.get(LabelItem, item_id)
                report.open_items.append(
                    {
                        "item": item.ref if item else item_id,
                        "dimensions": open_dims,
                        "coders": {c: dict(v) for c, v in item_codes.items()},
                    }
                )
                to_review.append((item_id, open_dims))
        for key, (code_id, by) in wanted.items():
            row = existing.pop(key, None)
            if row is None:
                session.add(
                    FinalLabel(
                        round_id=rnd.id or 0, item_id=key[0], dimension_id=key[1], code_id=code_id, decided_by=by
                    )
                )
                report.counts["final_new"] += 1
            elif (row.code_id, row.decided_by) != (code_id, by):
                row.code_id, row.decided_by = code_id, by
                session.add(row)
                report.counts["final_changed"] += 1
        for row in existing.values():  # no longer decided (codings changed): withdraw
            session.delete(row)
            report.counts["final_withdrawn"] += 1
        if conn is not None and review_project is not None and to_review:
            with ls_errors(conn.url):
                report.counts["sent_to_review"] = _send_to_review(
                    conn, session, review_project, codings, to_review, book.spec
                )
        for key, n in report.counts.items():
            log.add(key, n)
    return report


def _ensure_review_project(conn: Connection, session: Session, rnd: Any, book: LoadedCodebook) -> LsProject:
    from labeling.sync import PushReport, _ensure_project

    project, _ = _ensure_project(
        conn,
        session,
        rnd,
        None,
        "review",
        _review_config(book.spec),
        instructions(book.spec),
        None,
        PushReport(rnd.name),
    )
    return project


def _send_to_review(
    conn: Connection,
    session: Session,
    project: LsProject,
    codings: dict[int, dict[str, dict[str, int]]],
    to_review: list[tuple[int, list[str]]],
    spec: CodebookSpec,
) -> int:
    from labeling.sync import BATCH

    known = {t.item_id for t in session.exec(select(LsTask).where(LsTask.project_id == project.id))}
    todo = [(i, dims) for i, dims in to_review if i not in known]
    for b in range(0, len(todo), BATCH):
        batch = todo[b : b + BATCH]
        resp = conn.client.projects.import_tasks(
            id=project.ls_project_id,
            request=[_review_data(session, i, codings[i], spec, d) for i, d in batch],
            return_task_ids=True,
        )
        for (item_id, _), task_id in zip(batch, list(resp.task_ids or []), strict=True):
            session.add(LsTask(project_id=project.id or 0, item_id=item_id, ls_task_id=int(task_id)))
    return len(todo)
