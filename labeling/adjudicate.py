"""Final labels of a round: agreement decides automatically; disagreements go to a named rule or to a review
project in Label Studio. Every final label records who or what decided it, the reviewer's note and the codings
weighed; every change of it is kept in `adjudication_history` (see `labeling.finals`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import many_columns
from db.engine import session_scope
from db.ingest import recorded_run
from db.models.labeling import Coder, Coding, CodingValue, FinalLabel, LabelItem, LsProject, LsTask
from labeling.client import LabelStudioClient, LabelStudioError, newest
from labeling.codebook import CodebookSpec
from labeling.finals import Decision, final_key, write_final_labels
from labeling.labelstudio import check_result, config_hash, instructions, labeling_config
from labeling.projects import ProjectSync, item_task_data
from labeling.store import LabelingError, LoadedCodebook, get_round, round_codebook

AGREEMENT = "agreement"
SINGLE = "single-coder"
REVIEW_PREFIX = "review:"
KEPT = (REVIEW_PREFIX, "sheet")  # decisions made by people: they stay unless reviewed anew


@dataclass
class AdjudicationReport:
    round: str
    counts: Counter[str] = field(default_factory=Counter)
    open_items: list[dict[str, Any]] = field(default_factory=list)
    review_project: int | None = None
    invalid_reviews: list[dict[str, Any]] = field(default_factory=list)


#: A coder's answer to one dimension: a code, or the sorted codes of a multi-label dimension.
Answer = int | tuple[int, ...]


def _each(answer: Answer) -> tuple[int, ...]:
    return answer if isinstance(answer, tuple) else (answer,)


@dataclass(frozen=True)
class Review:
    """A reviewer's valid decision on one item: the newest annotation of its task in the review project."""

    codes: dict[str, Answer]
    reviewer: str
    note: str | None
    ls_task_id: int
    ls_annotation_id: int
    annotated_at: datetime


@dataclass
class RoundCodings:
    """The round's valid codings: item → coder → {dimension: code}, and item → coder → coding id."""

    codes: dict[int, dict[str, dict[str, Answer]]] = field(default_factory=lambda: defaultdict(dict))
    ids: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    def evidence(self, item_id: int, key: str) -> dict[str, Any]:
        """Which codings were weighed for one item and dimension, and whether they disagreed."""
        given = {coder: codes.get(key) for coder, codes in sorted(self.codes[item_id].items())}
        return {
            "codings": [
                {"coder": c, "coding_id": self.ids[item_id][c], "code": list(code) if isinstance(code, tuple) else code}
                for c, code in given.items()
            ],
            "disagreement": len(set(given.values())) > 1,
        }


def _consistent(codes: dict[str, Answer], spec: CodebookSpec) -> dict[str, Answer]:
    """Drop conditional dimensions whose condition the final codes do not meet (conditions may chain)."""
    out = dict(codes)
    changed = True
    while changed:
        changed = False
        for dim in spec.dimensions:
            singles = {k: v for k, v in out.items() if isinstance(v, int)}
            if dim.required_when and dim.key in out and not dim.applies(singles):
                del out[dim.key]
                changed = True
    return out


def _decide(
    item_codes: dict[str, dict[str, Answer]],
    spec: CodebookSpec,
    prefer: str | None,
    majority: bool,
    covered: set[str],
) -> tuple[dict[str, tuple[Answer, str]], list[str]]:
    """Final code (a set of codes for a multi-label dimension: equal sets agree, a majority keeps the codes more
    than half the coders chose) and decider per dimension of one item; unresolved dimensions listed.
    `covered` are the dimensions the round codes at all (a sheet may hold only some)."""
    coders = sorted(item_codes)
    if len(coders) == 1:
        only = coders[0]
        return {k: (v, f"{SINGLE}:{only}") for k, v in item_codes[only].items()}, []
    final: dict[str, tuple[Answer, str]] = {}
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
        if majority and dim.multi:
            votes = Counter(c for g in given if isinstance(g, tuple) for c in g)
            final[dim.key] = (tuple(sorted(c for c, n in votes.items() if n * 2 > len(coders))), "rule:majority")
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
    singles = {k: v for k, v in kept.items() if isinstance(v, int)}
    for dim in spec.dimensions:
        if (
            dim.required_when
            and dim.key in covered
            and dim.applies(singles)
            and dim.key not in final
            and dim.key not in open_dims
        ):
            open_dims.append(dim.key)
    return final, open_dims


def _codings(session: Session, round_id: int, book: LoadedCodebook) -> RoundCodings:
    key_by_dim = {v: k for k, v in book.dimension_ids.items()}
    code_by_id = book.code_by_id
    multi = {d.key for d in book.spec.dimensions if d.multi}
    out = RoundCodings()
    rows = session.exec(
        select(
            *many_columns(
                col(Coding.item_id),
                col(Coding.id),
                col(Coder.name),
                col(CodingValue.dimension_id),
                col(CodingValue.code_id),
            )
        )
        .join(Coder, Coder.id == Coding.coder_id)
        .join(CodingValue, CodingValue.coding_id == Coding.id, isouter=True)
        .where(Coding.round_id == round_id, col(Coding.valid).is_(True))
    ).all()
    for item_id, coding_id, coder, dim_id, code_id in rows:
        codes = out.codes[item_id].setdefault(coder, {})
        out.ids[item_id][coder] = coding_id or 0
        if dim_id is not None:
            key, code = key_by_dim[dim_id], code_by_id[code_id][1]
            if key in multi:
                before = codes.get(key, ())
                codes[key] = tuple(sorted({*(before if isinstance(before, tuple) else ()), code}))
            else:
                codes[key] = code
    return out


def _assigned(session: Session, round_id: int) -> dict[int, set[str]]:
    """item → coders it was pushed to (Label Studio rounds); an item waits until each has a valid coding."""
    rows = session.exec(
        select(LsTask.item_id, Coder.name)
        .join(LsProject, col(LsProject.id) == col(LsTask.project_id))
        .join(Coder, col(Coder.id) == col(LsProject.coder_id))
        .where(LsProject.round_id == round_id, LsProject.purpose == "coding")
    ).all()
    out: dict[int, set[str]] = defaultdict(set)
    for item_id, name in rows:
        out[item_id].add(name)
    return out


def _review_data(
    session: Session, item_id: int, codes: dict[str, dict[str, Answer]], spec: CodebookSpec, open_dims: list[str]
) -> dict[str, Any]:
    item = session.get(LabelItem, item_id)
    if item is None:
        raise LabelingError(f"item {item_id} does not exist")
    data = item_task_data(session, item)
    lines = []
    for coder, given in sorted(codes.items()):
        parts = [
            f"{k}=" + ", ".join(f"{c} {spec.dimension(k).codes[c].label}" for c in _each(v)) for k, v in given.items()
        ]
        lines.append(f"{coder}: " + "; ".join(parts))
    data["codings"] = "Disagreement on " + ", ".join(open_dims) + ". Coders: " + " | ".join(lines)
    return data


def _review_config(spec: CodebookSpec, discussion: bool = True) -> str:
    config = labeling_config(spec, discussion)
    return config.replace(
        '  <Header value="$title"/>', '  <Header value="$title"/>\n  <Text name="codings" value="$codings"/>', 1
    )


def _pull_review(
    client: LabelStudioClient, session: Session, project: LsProject, book: LoadedCodebook, report: AdjudicationReport
) -> dict[int, Review]:
    """item → the reviewer's decision, from the newest annotation of each review task; an invalid one is
    reported (the item stays as it was) instead of being passed over."""
    items = {t.ls_task_id: t.item_id for t in session.exec(select(LsTask).where(LsTask.project_id == project.id))}
    if not items:
        return {}
    names = {u.id: u.name for u in client.users()}
    out: dict[int, Review] = {}
    for task in client.tasks(project.ls_project_id).tasks:
        item_id = items.get(task.id)
        ann = newest(task.live_annotations)
        if item_id is None or ann is None:
            continue
        by = ann.completed_by
        reviewer = names.get(by, f"user {by}") if by is not None else "unknown"
        checked = check_result(ann.result, book.spec)
        if not checked.valid:
            item = session.get(LabelItem, item_id)
            report.invalid_reviews.append(
                {
                    "item": item.ref if item else item_id,
                    "reviewer": reviewer,
                    "ls_task_id": task.id,
                    "ls_annotation_id": ann.id,
                    "problems": checked.problems,
                }
            )
            continue
        answers: dict[str, Answer] = {**checked.codes, **checked.sets}
        out[item_id] = Review(answers, reviewer, checked.note, task.id, ann.id, ann.updated_at)
    return out


def adjudicate(
    engine: Engine,
    round_name: str,
    prefer: str | None = None,
    majority: bool = False,
    client: LabelStudioClient | None = None,
) -> AdjudicationReport:
    """Write final labels for the round in one transaction. With a client, open disagreements go to the
    round's review project and reviewers' decisions made there so far become final labels."""
    report = AdjudicationReport(round_name)
    params = {"round": round_name, "prefer": prefer, "majority": majority, "review": client is not None}
    with recorded_run(engine, "label-adjudicate", params) as log:
        try:
            with session_scope(engine) as session:
                _adjudicate(session, client, round_name, prefer, majority, report, log.id)
        except LabelStudioError as exc:
            raise exc.with_context("no final label was changed") from None
        for key, n in report.counts.items():
            log.add(key, n)
    return report


def _adjudicate(
    session: Session,
    client: LabelStudioClient | None,
    round_name: str,
    prefer: str | None,
    majority: bool,
    report: AdjudicationReport,
    run_id: int,
) -> None:
    rnd = get_round(session, round_name)
    book = round_codebook(session, rnd)
    codings = _codings(session, rnd.id or 0, book)
    if not codings.codes:
        raise LabelingError(f"round {round_name!r} has no valid codings to adjudicate")
    if prefer and prefer not in {c for item in codings.codes.values() for c in item}:
        raise LabelingError(f"--prefer-coder {prefer!r} has no codings in round {round_name!r}")
    projects = review_project = None
    reviewed: dict[int, Review] = {}
    if client is not None:
        projects = ProjectSync(client, session, rnd)
        instruction = instructions(book.spec)
        legacy = (config_hash(_review_config(book.spec, discussion=False), instruction),)
        review_project = projects.ensure(None, "review", _review_config(book.spec), instruction, legacy)
        reviewed = _pull_review(client, session, review_project, book, report)
        report.review_project = review_project.ls_project_id
    multi = {book.dimension_ids[d.key] for d in book.spec.dimensions if d.multi}
    kept: dict[int, list[FinalLabel]] = defaultdict(list)
    for row in session.exec(select(FinalLabel).where(FinalLabel.round_id == rnd.id)).all():
        if row.decided_by.startswith(KEPT):
            kept[row.item_id].append(row)
    key_by_dim = {v: k for k, v in book.dimension_ids.items()}
    covered = {k for item in codings.codes.values() for codes in item.values() for k in codes}
    assigned = _assigned(session, rnd.id or 0)
    to_review: list[tuple[int, list[str]]] = []
    wanted: dict[tuple[int, ...], Decision] = {}
    for item_id, item_codes in sorted(codings.codes.items()):
        note: str | None = None
        extra: dict[str, Any] = {}
        open_dims: list[str] = []
        if item_id in reviewed:
            review = reviewed[item_id]
            decided = {k: (v, f"{REVIEW_PREFIX}{review.reviewer}") for k, v in review.codes.items()}
            note = review.note
            extra = {
                "review": {
                    "ls_project_id": report.review_project,
                    "ls_task_id": review.ls_task_id,
                    "ls_annotation_id": review.ls_annotation_id,
                    "annotated_at": review.annotated_at.isoformat(),
                }
            }
            report.counts["items_reviewed"] += 1
        elif assigned.get(item_id, set()) - set(item_codes):
            report.counts["items_waiting"] += 1
            item = session.get(LabelItem, item_id)
            report.open_items.append(
                {
                    "item": item.ref if item else item_id,
                    "dimensions": [],
                    "coders": {c: dict(v) for c, v in item_codes.items()},
                    "waiting_for": sorted(assigned[item_id] - set(item_codes)),
                }
            )
            continue
        elif item_id in kept:
            for row in kept[item_id]:
                evidence = codings.evidence(item_id, key_by_dim[row.dimension_id])
                wanted[final_key(item_id, row.dimension_id, row.code_id, multi)] = Decision(
                    row.code_id, row.decided_by, row.note, {**row.detail, **evidence}
                )
                report.counts[row.decided_by.split(":")[0]] += 1
            report.counts["items_kept"] += 1
            continue
        else:
            decided, open_dims = _decide(item_codes, book.spec, prefer, majority, covered)
        for key, (code, by) in decided.items():
            detail = {**codings.evidence(item_id, key), **extra}
            dim_id = book.dimension_ids[key]
            for c in _each(code):
                code_id = book.code_ids[(key, c)]
                wanted[final_key(item_id, dim_id, code_id, multi)] = Decision(code_id, by, note, detail)
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
    counts = write_final_labels(
        session, rnd.id or 0, wanted, run_id, "no longer decided: the codings changed", multi=multi
    )
    for state in ("new", "changed", "withdrawn"):
        report.counts[f"final_{state}"] = counts[state]
    report.counts["invalid_reviews"] = len(report.invalid_reviews)
    if projects is not None and review_project is not None and to_review:
        report.counts["sent_to_review"] = _send_to_review(projects, review_project, codings, to_review, book.spec)


def _send_to_review(
    projects: ProjectSync,
    project: LsProject,
    codings: RoundCodings,
    to_review: list[tuple[int, list[str]]],
    spec: CodebookSpec,
) -> int:
    """Import the open items not yet in the review project (tasks a failed run left there are adopted)."""
    session = projects.session
    refs = session.exec(
        select(col(LabelItem.ref), col(LabelItem.id)).where(col(LabelItem.id).in_(list(codings.codes)))
    ).all()
    known = projects.known_tasks(project, {ref: item_id or 0 for ref, item_id in refs})
    todo = [(i, _review_data(session, i, codings.codes[i], spec, dims)) for i, dims in to_review if i not in known]
    return projects.import_tasks(project, todo, known)
