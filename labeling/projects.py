"""A round's Label Studio projects (one per coder, plus a review project): named by the round's uid, created or
adopted after a failed push, their tasks imported in batches and recorded, projects no round owns removed."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from db.models.github import Issue
from db.models.labeling import Coder, LabelItem, LabelRound, LsProject, LsTask
from labeling.client import LabelStudioClient, Project
from labeling.labelstudio import DISCUSSION, config_hash, discussion_html

BATCH = 1000  # tasks per import call (the issue's limit; LS takes 250K per call)
REVIEW = "review"


def round_uid(rnd: LabelRound) -> str:
    """What keeps two databases sharing one server apart in project titles."""
    return str(rnd.params.get("uid", rnd.id))


def project_title(round_name: str, uid: str, coder: str | None) -> str:
    return f"{round_name} · {coder or REVIEW} [{uid}]"


def task_data(issue: Issue, full_name: str, item: LabelItem, discussion: str | None = None) -> dict[str, Any]:
    """What a coder sees; field names avoid `id`/`annotator` (they clash in LS exports). `discussion` is the
    comments' HTML (`labelstudio.discussion_html`)."""
    url = issue.html_url or f"https://github.com/{full_name}/issues/{issue.number}"
    body = issue.body or ("(body not mined yet: open the link)" if not issue.hydrated else "(empty)")
    if not issue.hydrated and issue.sheet_description:
        body = f"{body}\n\nDescription from the coding sheet: {issue.sheet_description}"
    return {
        "item_ref": item.ref,
        "repository": full_name,
        "number": issue.number,
        "title": f"{full_name}#{issue.number}: {issue.title or issue.sheet_title or '(title unknown)'}"
        + (" (title from the coding sheet)" if not issue.hydrated and (issue.title or issue.sheet_title) else ""),
        "body": body,
        "labels": "labels: " + (", ".join(issue.labels) if issue.labels else "none"),
        "link": f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{html.escape(url)}</a>',
        DISCUSSION: discussion if discussion is not None else discussion_html([]),
    }


def item_task_data(session: Session, item: LabelItem) -> dict[str, Any]:
    """What a coder (or reviewer) sees of any item: an issue, or a free-text survey answer."""
    from db.models.github import Repository
    from db.queries.issues import issue_discussion
    from labeling.store import LabelingError
    from labeling.survey_items import answer_task_data, item_answer

    if item.issue_id is not None:
        issue = session.get(Issue, item.issue_id)
        if issue is not None:
            repo = session.get(Repository, issue.repository_id)
            comments = discussion_html(issue_discussion(session, issue.id or 0))
            return task_data(issue, repo.full_name if repo else "?", item, comments)
    answer = item_answer(session, item)
    if answer is not None:
        return answer_task_data(item, answer)
    raise LabelingError(f"item {item.ref!r} ({item.kind}) is linked to no issue or survey answer: it cannot be shown")


@dataclass
class ProjectSync:
    """The projects of one round on one server: what was created, adopted, updated, removed."""

    client: LabelStudioClient
    session: Session
    rnd: LabelRound
    search: bool = True  # False when the uid is new: no project can carry it yet
    created: int = 0
    updated: int = 0
    adopted_tasks: int = 0
    fresh: set[int] = field(default_factory=set)  # ls_project rows created by this run (nothing to reconcile)
    _listing: dict[str, Project] | None = None

    def listing(self) -> dict[str, Project]:
        """The server's projects carrying this round's uid, by title (one request, on first need)."""
        if self._listing is None:
            found = self.client.projects_titled(f"[{round_uid(self.rnd)}]") if self.search else []
            self._listing = {p.title or "": p for p in found}
        return self._listing

    def ensure(
        self, coder: Coder | None, purpose: str, config: str, instruction: str, compatible: tuple[str, ...] = ()
    ) -> LsProject:
        """The recorded project; else one with our title (a failed push created it) adopted; else a new one.
        A changed generated config is sent again, unless the project's is one of the `compatible` hashes (an
        older layout its tasks were made for: a project pushed before tasks carried the discussion keeps it)."""
        digest = config_hash(config, instruction + ("\0predictions" if self.rnd.params.get("show_predictions") else ""))
        row = self.session.exec(
            select(LsProject).where(
                LsProject.round_id == self.rnd.id,
                LsProject.purpose == purpose,
                LsProject.coder_id == (coder.id if coder else None),
            )
        ).first()
        title = project_title(self.rnd.name, round_uid(self.rnd), coder.name if coder else None)
        description = f"Interop Lab round {self.rnd.name!r}" + (
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
            # coders see a model's suggestions only in rounds pushed with --predictions (blind by default)
            show_collab_predictions=bool(self.rnd.params.get("show_predictions")) and coder is not None,
        )
        if row is None:
            match = self.listing().get(title)
            if match is None:
                project = self.client.create_project(title, settings)
                self.created += 1
            else:
                project = self.client.update_project(match.id, settings)
                self.updated += 1
            row = LsProject(
                round_id=self.rnd.id or 0,
                coder_id=coder.id if coder else None,
                purpose=purpose,
                ls_project_id=project.id,
                config_hash=digest,
            )
            self.session.add(row)
            self.session.flush()
            if match is None:
                self.fresh.add(row.id or 0)
        elif row.config_hash != digest and row.config_hash not in compatible:
            self.client.update_project(row.ls_project_id, settings)
            row.config_hash = digest
            self.session.add(row)
            self.updated += 1
        return row

    def known_tasks(self, project: LsProject, item_by_ref: dict[str, int]) -> dict[int, int]:
        """item → task id of the project's tasks: those recorded, plus those in Label Studio but not recorded (a
        push failed after importing them), adopted by `item_ref`. Adoption resets the project's pull cursor: a
        coder may have annotated an adopted task already, and an incremental pull would not see it again."""
        rows = self.session.exec(select(LsTask).where(LsTask.project_id == project.id)).all()
        known = {t.item_id: t.ls_task_id for t in rows}
        if project.id in self.fresh:
            return known
        if (self.client.get_project(project.ls_project_id).task_number or 0) <= len(known):
            return known
        adopted = 0
        for task in self.client.tasks(project.ls_project_id).tasks:
            ref = task.data.get("item_ref")
            item_id = item_by_ref.get(ref) if isinstance(ref, str) else None
            if item_id is None or item_id in known:
                continue
            self.session.add(LsTask(project_id=project.id or 0, item_id=item_id, ls_task_id=task.id))
            known[item_id] = task.id
            adopted += 1
        if adopted:
            project.last_pulled_at = None
            self.session.add(project)
        self.session.flush()
        self.adopted_tasks += adopted
        return known

    def import_tasks(self, project: LsProject, todo: list[tuple[int, dict[str, Any]]], known: dict[int, int]) -> int:
        """Import (item id, task data) pairs in batches of ≤ BATCH and record each task; returns how many."""
        for b in range(0, len(todo), BATCH):
            batch = todo[b : b + BATCH]
            ids = self.client.import_tasks(project.ls_project_id, [data for _, data in batch])
            for (item_id, _), task_id in zip(batch, ids, strict=True):
                self.session.add(LsTask(project_id=project.id or 0, item_id=item_id, ls_task_id=task_id))
                known[item_id] = task_id
        self.session.flush()
        return len(todo)

    def remove_orphans(self, keep: set[str]) -> tuple[list[int], list[str]]:
        """Delete this round's coder projects that no recorded round owns (a failed push of the round with other
        coders created them) unless someone annotated there already; returns (deleted ids, kept titles)."""
        uid = round_uid(self.rnd)
        recorded = set(self.session.exec(select(LsProject.ls_project_id).where(LsProject.round_id == self.rnd.id)))
        deleted: list[int] = []
        kept: list[str] = []
        prefix, suffix = f"{self.rnd.name} · ", f" [{uid}]"
        for title, project in sorted(self.listing().items()):
            if not (title.startswith(prefix) and title.endswith(suffix)) or project.id in recorded:
                continue
            coder = title[len(prefix) : -len(suffix)]
            if coder in keep or coder == REVIEW:
                continue
            annotations = project.total_annotations_number
            if annotations is None:  # not in the listing: ask; what cannot be checked is kept
                annotations = self.client.get_project(project.id).total_annotations_number
            if annotations is None or annotations > 0:
                kept.append(f"{title} (project {project.id}, {annotations or 'unknown'} annotations)")
                continue
            self.client.delete_project(project.id)
            deleted.append(project.id)
        return deleted, kept
