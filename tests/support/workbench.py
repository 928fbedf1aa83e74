"""The coding workbench's data: seed_codings' round r1 grown to one issue in every agreement state, with a
discussion, an adjudication history and a Label Studio task (through the db models, like the commands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models import (
    AdjudicationHistory,
    CodebookCode,
    CodebookDimension,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    Issue,
    IssueComment,
    LabelItem,
    LabelRound,
    LsProject,
    LsTask,
    Prediction,
)
from tests.support.codings import T, seed_codings

REPO = "acme/conv"
#: The fenced code block and the bare traceback of the discussion of acme/conv#42.
FENCED = "```python\ntorch.onnx.export(model, x, 'm.onnx')\n```"
TRACEBACK = 'Traceback (most recent call last):\n  File "export.py", line 3, in <module>\nRuntimeError: boom'
NOTE = "the traceback points at the exporter"
#: The model version of #42's suggested codes (symptom 1 matches the final code, cause 1 does not).
MODEL = "tfidf-logreg-test"


@dataclass(frozen=True)
class Workbench:
    """Which issue is in which state (issue number → state) and the Label Studio ids of #42's task."""

    states: dict[int, str]
    ls_project_id: int = 7
    ls_task_id: int = 123


def seed_workbench(engine: Engine) -> Workbench:
    """Round r1 (symptom, cause; coders alice and bob): #42 adjudicated (they differ on cause; the final cause was
    decided by rule, then changed by carol's review with a note) with a title, body and two comments, a Label
    Studio task and a model's suggested codes; #43 disagreed (symptom 1 | 2, no final); #44 agreed (one coder);
    #45 known only by URL, with the sheet's final codes; #46 mined and never coded."""
    seed_codings(engine)
    with Session(engine) as s:
        rnd = s.exec(select(LabelRound).where(LabelRound.name == "r1")).one()
        issue = s.exec(select(Issue).where(Issue.number == 42)).one()
        issue.title, issue.state, issue.author = "export of a LSTM fails", "closed", "carol"
        issue.body = f"Exporting crashes:\n\n{FENCED}\n\nsee below"
        issue.created_at, issue.closed_at = T - timedelta(days=30), T - timedelta(days=2)
        issue.comment_count, issue.html_url = 2, f"https://github.com/{REPO}/issues/42"
        s.add(issue)
        for n, (author, body) in enumerate((("dave", f"Same here:\n{TRACEBACK}"), ("erin", "Fixed by #50."))):
            when = T - timedelta(days=20 - n)
            s.add(
                IssueComment(
                    issue_id=issue.id or 0,
                    comment_key=f"c{n}",
                    author=author,
                    body=body,
                    created_at=when,
                    updated_at=when,
                )
            )
        dims = {d.key: d for d in s.exec(select(CodebookDimension)).all()}
        codes = {
            (key, c.code): c
            for key, d in dims.items()
            for c in s.exec(select(CodebookCode).where(CodebookCode.dimension_id == d.id)).all()
        }
        alice, bob = (s.exec(select(Coder).where(Coder.name == n)).one() for n in ("alice", "bob"))
        item42 = s.exec(select(LabelItem).where(LabelItem.ref == f"{REPO}#42")).one()
        cause = s.exec(
            select(FinalLabel).where(FinalLabel.item_id == item42.id, FinalLabel.dimension_id == dims["cause"].id)
        ).one()
        cause.note = NOTE
        s.add(cause)
        first, second = T - timedelta(days=1), T
        s.add_all(
            [
                AdjudicationHistory(
                    round_id=rnd.id or 0,
                    item_id=item42.id or 0,
                    dimension_id=dims["cause"].id or 0,
                    action="new",
                    code_id=codes["cause", 1].id,
                    decided_by="rule:prefer-coder=alice",
                    decided_at=first,
                ),
                AdjudicationHistory(
                    round_id=rnd.id or 0,
                    item_id=item42.id or 0,
                    dimension_id=dims["cause"].id or 0,
                    action="changed",
                    code_id=codes["cause", 2].id,
                    decided_by="review:carol",
                    note=NOTE,
                    previous_code_id=codes["cause", 1].id,
                    previous_decided_by="rule:prefer-coder=alice",
                    decided_at=second,
                ),
            ]
        )
        project = LsProject(round_id=rnd.id or 0, coder_id=alice.id, purpose="coding", ls_project_id=7, config_hash="x")
        s.add(project)
        s.flush()
        s.add(LsTask(project_id=project.id or 0, item_id=item42.id or 0, ls_task_id=123))
        for key, value, score in (("symptom", 1, 0.8), ("cause", 1, 0.55)):  # a model's suggestions, never codes
            s.add(
                Prediction(
                    round_id=rnd.id or 0,
                    item_id=item42.id or 0,
                    dimension_id=dims[key].id or 0,
                    code_id=codes[key, value].id or 0,
                    score=score,
                    model_version=MODEL,
                )
            )

        def add_issue(number: int, hydrated: bool = True) -> LabelItem:
            row = Issue(
                repository_id=issue.repository_id,
                number=number,
                hydrated=hydrated,
                html_url=f"https://github.com/{REPO}/issues/{number}",
                **(
                    {"title": f"issue {number}", "state": "open", "created_at": T - timedelta(days=number)}
                    if hydrated
                    else {}
                ),
            )
            s.add(row)
            s.flush()
            item = LabelItem(kind="issue", ref=f"{REPO}#{number}", issue_id=row.id)
            s.add(item)
            s.flush()
            return item

        def code(item: LabelItem, coder: Coder, **values: int) -> None:
            row = Coding(round_id=rnd.id or 0, item_id=item.id or 0, coder_id=coder.id or 0, updated_at=T)
            s.add(row)
            s.flush()
            for key, value in values.items():
                s.add(CodingValue(coding_id=row.id or 0, dimension_id=dims[key].id or 0, code_id=codes[key, value].id))

        item43, item44, item45 = add_issue(43), add_issue(44), add_issue(45, hydrated=False)
        code(item43, alice, symptom=1, cause=1)
        code(item43, bob, symptom=2, cause=1)
        code(item44, alice, symptom=2, cause=1)
        for key, value in (("symptom", 2), ("cause", 2)):
            s.add(
                FinalLabel(
                    round_id=rnd.id or 0,
                    item_id=item45.id or 0,
                    dimension_id=dims[key].id or 0,
                    code_id=codes[key, value].id or 0,
                    decided_by="sheet",
                    decided_at=T,
                )
            )
        s.add(
            Issue(
                repository_id=issue.repository_id,
                number=46,
                title="never coded",
                state="open",
                created_at=T - timedelta(days=46),
                hydrated=True,
            )
        )
        s.commit()
    return Workbench(states={42: "adjudicated", 43: "disagreed", 44: "agreed", 45: "agreed", 46: "uncoded"})
