"""Pull codings back from Label Studio: the `db.mining.Miner` of coder projects, one transaction per pull.

Every request goes through `LabelStudioClient` (shapes checked); a failure stores nothing, and a project's
"last pulled" cursor moves only with its data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import session_scope
from db.ingest import RunLog
from db.mining import Batch, mine
from db.models.labeling import Coder, Coding, LabelItem, LabelRound, LsProject, LsTask
from labeling.client import Annotation, LabelStudioClient, LabelStudioError, newest
from labeling.labelstudio import check_result
from labeling.store import CodingEntry, LabelingError, LoadedCodebook, bulk_upsert_codings, get_round, round_codebook

# A pull sees every write committed before its first request; the next pull re-reads tasks updated after
# (server time of that request − slack): the slack covers writes in flight and the Date header's 1 s resolution.
WATERMARK_SLACK = timedelta(seconds=2)


@dataclass
class PullReport:
    rounds: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    invalid: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


def pull(engine: Engine, client: LabelStudioClient, round_name: str | None = None, full: bool = False) -> PullReport:
    """Fetch tasks changed since the last pull (all with `full`), check every annotation against the round's
    codebook, and upsert codings; invalid ones are kept as invalid with their problems. One transaction: an
    answer the client cannot vouch for stores nothing and leaves every "last pulled" time where it was."""
    miner = LabelPull(engine, client, round_name, full)
    mine(engine, miner)
    return miner.report


@dataclass
class ProjectPull:
    """One coder project's changed tasks as read and checked: codings to store and codings whose annotation is
    gone (its batch's cursor is the project's new "last pulled" time; None: no server clock, it stays)."""

    round: LabelRound
    coder: Coder
    project: LsProject
    entries: list[CodingEntry]
    removed: list[Coding]


class LabelPull:
    """The `db.mining.Miner` of Label Studio codings: one batch per coder project, its cursor the project's
    `last_pulled_at`; the whole pull is one transaction (`opened`), so its cursors move only with its data."""

    kind = "label-pull"

    def __init__(self, engine: Engine, client: LabelStudioClient, round_name: str | None, full: bool) -> None:
        self.engine, self.client, self.round_name, self.full = engine, client, round_name, full
        self.report = PullReport()
        self.session: Session | None = None

    def parameters(self) -> dict[str, Any]:
        return {"round": self.round_name, "full": self.full}

    @contextmanager
    def opened(self, run: RunLog) -> Iterator[None]:
        start = self.client.request_count
        try:
            with session_scope(self.engine) as session:
                self.session = session
                yield
        except LabelStudioError as exc:
            raise exc.with_context("nothing was stored and no last-pulled time moved") from None
        finally:
            self.session = None
        for key, n in self.report.counts.items():
            run.add(key, n)
        self.report.requests = self.client.request_count - start

    def fetch(self, run: RunLog) -> Iterator[Batch[ProjectPull, datetime]]:
        session = self._session()
        rounds = (
            [get_round(session, self.round_name)]
            if self.round_name
            else list(session.exec(select(LabelRound).where(LabelRound.source == "labelstudio")).all())
        )
        if not rounds:
            raise LabelingError("no Label Studio round yet: push one with `interop label push`")
        for rnd in rounds:
            self.report.rounds.append(rnd.name)
            book = round_codebook(session, rnd)
            projects = session.exec(
                select(LsProject).where(LsProject.round_id == rnd.id, LsProject.purpose == "coding")
            ).all()
            for project in projects:
                batch = self._read_project(rnd, book, project)
                if batch is not None:
                    yield batch

    def load(self, batch: Batch[ProjectPull, datetime], run: RunLog) -> None:
        session, counts = self._session(), self.report.counts
        for pulled in batch.items:
            for coding in pulled.removed:
                session.delete(coding)
                counts["removed"] += 1
            session.flush()
            states = bulk_upsert_codings(session, pulled.round.id or 0, pulled.coder.id or 0, pulled.entries)
            for state in states.values():
                counts[state] += 1
            if batch.cursor is not None:
                pulled.project.last_pulled_at = batch.cursor
                session.add(pulled.project)

    def _session(self) -> Session:
        if self.session is None:
            raise RuntimeError("LabelPull used outside `opened`")
        return self.session

    def _read_project(
        self, rnd: LabelRound, book: LoadedCodebook, project: LsProject
    ) -> Batch[ProjectPull, datetime] | None:
        """The project's tasks changed since its cursor, each newest live annotation checked against the codebook."""
        session, report = self._session(), self.report
        coder = session.get(Coder, project.coder_id)
        if coder is None:
            return None
        task_items = {
            t.ls_task_id: t.item_id for t in session.exec(select(LsTask).where(LsTask.project_id == project.id)).all()
        }
        listing = self.client.tasks(project.ls_project_id, None if self.full else project.last_pulled_at)
        current = {
            c.item_id: c
            for c in session.exec(select(Coding).where(Coding.round_id == rnd.id, Coding.coder_id == coder.id)).all()
        }
        entries: list[CodingEntry] = []
        removed: list[Coding] = []
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
                    removed.append(existing)
                continue
            report.counts["superseded"] += len(live) - 1
            entries.append(self._entry(rnd, book, project, coder, task.id, item_id, ann))
        cursor = None
        if listing.server_time is not None:
            # not past the newest write seen: a server clock behind the tasks' stamps must not skip them
            candidate = listing.server_time - WATERMARK_SLACK
            newest_seen = max((t.updated_at for t in listing.tasks), default=None)
            cursor = min(candidate, newest_seen) if newest_seen is not None else candidate
        return Batch([ProjectPull(rnd, coder, project, entries, removed)], cursor, context=project.ls_project_id)

    def _entry(
        self,
        rnd: LabelRound,
        book: LoadedCodebook,
        project: LsProject,
        coder: Coder,
        task_id: int,
        item_id: int,
        ann: Annotation,
    ) -> CodingEntry:
        """The coding an annotation gives; one that breaks the codebook is kept as invalid, with its problems."""
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
        values: dict[int, int | list[int]] = {}
        if valid:
            values.update({book.dimension_ids[k]: book.code_ids[(k, v)] for k, v in checked.codes.items()})
            values.update(
                {book.dimension_ids[k]: [book.code_ids[(k, v)] for v in vs] for k, vs in checked.sets.items()}
            )
        if not valid:
            self.report.counts["invalid"] += 1
            item = self._session().get(LabelItem, item_id)
            self.report.invalid.append(
                {
                    "round": rnd.name,
                    "coder": coder.name,
                    "item": item.ref if item else item_id,
                    "ls_task_id": task_id,
                    "ls_annotation_id": ann.id,
                    "problems": problems,
                }
            )
        return CodingEntry(
            item_id,
            values,
            valid,
            problems,
            dict(
                note=checked.note,
                proposals=checked.proposals or None,
                ls_task_id=task_id,
                ls_annotation_id=ann.id,
                result=ann.result,
                created_at=ann.created_at,
                updated_at=ann.updated_at,
                source_ref=f"labelstudio project {project.ls_project_id} task {task_id} annotation {ann.id}",
            ),
        )
