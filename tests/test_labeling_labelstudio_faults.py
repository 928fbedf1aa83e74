"""Label Studio faults between the CLI and the real server (a fault proxy in front of it): wrong shapes, lists
instead of objects, 500s mid-push and answers lost after the server acted. Each ends in one `error:` line, exit 2,
nothing half-written and no cursor moved; a retry then completes without duplicating anything in Label Studio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from db.models.labeling import (
    AdjudicationHistory,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    LabelItem,
    LabelRound,
    LsProject,
    LsTask,
)
from tests.support.labeling import make_sample, result_for
from tests.support.labelstudio_faults import Fault, FaultProxy

pytestmark = pytest.mark.labelstudio

TASKS = r"/api/tasks/?"
IMPORT = r"/api/projects/\d+/import/?"


@pytest.fixture
def proxy(label_studio) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    faults = FaultProxy(label_studio.url)
    yield faults
    faults.close()


@pytest.fixture
def cli_ls(cli, proxy: FaultProxy, label_studio, shared_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI with a codebook loaded, talking to Label Studio through the fault proxy."""
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", proxy.url)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", label_studio.token)
    loaded = cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert loaded.exit_code == 0, loaded.output
    return cli


def one_error(result: Any, *fragments: str) -> str:
    """Exit 2, exactly one `error:` line containing every fragment, no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and len(lines) >= 1 and text.startswith("error: "), result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert fragment in text, result.output
    return text


def snapshot(engine: Engine) -> tuple[Any, ...]:
    """Every labeling table's row count, and each project's cursor."""
    with Session(engine) as s:
        counts = tuple(
            s.exec(select(func.count()).select_from(t)).one()
            for t in (LabelRound, Coder, LabelItem, LsProject, LsTask, Coding, CodingValue, FinalLabel)
        )
        cursors = tuple(s.exec(select(LsProject.id, LsProject.last_pulled_at).order_by(LsProject.id)).all())
        history = s.exec(select(func.count()).select_from(AdjudicationHistory)).one()
    return counts, cursors, history


def ls_projects(ls_client, fragment: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {p.title: p for p in ls_client.projects.list(title=fragment, page_size=100) if fragment in p.title}


def recorded(engine: Engine) -> tuple[dict[str, int], dict[str, dict[int, int]], dict[int, str]]:
    """coder → LS user id, coder → {item id: task id}, item id → ref."""
    with Session(engine) as s:
        coders = {c.id: c for c in s.exec(select(Coder)).all()}
        tasks: dict[str, dict[int, int]] = {}
        for p in s.exec(select(LsProject).where(LsProject.purpose == "coding")).all():
            rows = s.exec(select(LsTask).where(LsTask.project_id == p.id)).all()
            tasks[coders[p.coder_id].name] = {t.item_id: t.ls_task_id for t in rows}
        refs = {i.id or 0: i.ref for i in s.exec(select(LabelItem)).all()}
    return {c.name: c.ls_user_id or 0 for c in coders.values()}, tasks, refs


def test_whoami_answering_a_list_is_one_error_line_and_nothing_written(cli_ls, proxy: FaultProxy, engine) -> None:  # type: ignore[no-untyped-def]
    make_sample(engine, "who", 2, start=600)
    before = snapshot(engine)
    proxy.add(Fault("GET", r"/api/current-user/whoami/?", body=lambda real: [real], times=2))
    pushed = cli_ls("label", "push", "--sample", "who", "--round", "who", "--coders", "alice")
    one_error(pushed, "answered GET /api/current-user/whoami with an unexpected shape", "(got a list)")
    pulled = cli_ls("label", "pull")
    one_error(pulled, "GET /api/current-user/whoami")
    assert snapshot(engine) == before


def test_a_push_failing_mid_way_records_nothing_and_a_retry_adopts_what_arrived(
    cli_ls,
    proxy: FaultProxy,
    engine,
    ls_client,
    backend: str,  # type: ignore[no-untyped-def]
) -> None:
    make_sample(engine, "mid", 3, start=700)
    name = f"mid-{backend}"
    before = snapshot(engine)
    # bob's import reaches Label Studio but its answer is lost: the worst case for duplicates
    proxy.add(Fault("POST", IMPORT, status=500, body={"detail": "boom"}, forward=True, after=1))
    failed = cli_ls("label", "push", "--sample", "mid", "--round", name, "--coders", "alice,bob")
    one_error(failed, "HTTP 500 to POST /api/projects/", "/import: boom", "the round was not recorded")
    assert snapshot(engine) == before  # no round, no coder, no project or task row
    arrived = ls_projects(ls_client, f"{name} · ")
    assert sorted(t.split(" · ")[1].split(" ")[0] for t in arrived) == ["alice", "bob"]
    assert [p.task_number for p in arrived.values()] == [3, 3]

    again = cli_ls("label", "push", "--sample", "mid", "--round", name, "--coders", "alice,bob")
    assert again.exit_code == 0, again.output
    assert "0 projects created" in again.output and "6 tasks adopted" in again.output
    assert again.output.count("0 new tasks, 3 in all") == 2
    after = ls_projects(ls_client, f"{name} · ")
    assert {p.id for p in after.values()} == {p.id for p in arrived.values()}
    assert [ls_client.projects.get(id=p.id).task_number for p in after.values()] == [3, 3]  # nothing duplicated
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(LsTask)).one() == 6


def test_a_retry_with_other_coders_proceeds_and_removes_the_failed_pushs_projects(
    cli_ls,
    proxy: FaultProxy,
    engine,
    ls_client,
    backend: str,  # type: ignore[no-untyped-def]
) -> None:
    make_sample(engine, "other", 2, start=720)
    name = f"other-{backend}"
    proxy.add(Fault("POST", IMPORT, status=502, body={"detail": "bad gateway"}, forward=True, after=1))
    failed = cli_ls("label", "push", "--sample", "other", "--round", name, "--coders", "alice,bob")
    one_error(failed, "HTTP 502 to POST /api/projects/", "the round was not recorded")
    left = ls_projects(ls_client, f"{name} · ")
    alice = next(p for t, p in left.items() if " · alice " in t)
    bob = next(p for t, p in left.items() if " · bob " in t)
    # someone already annotated in alice's project: that one is kept (with a note), bob's empty one goes
    task = next(iter(ls_client.tasks.list(project=alice.id)))
    ls_client.annotations.create(id=task.id, result=result_for((1, "Crash"), (4, "Tensor Shape Problem")))

    retry = cli_ls("label", "push", "--sample", "other", "--round", name, "--coders", "carol,dave")
    assert retry.exit_code == 0, retry.output  # not refused as "pushed with coders alice,bob"
    text = " ".join(retry.output.split())
    assert f"removed Label Studio projects {bob.id}" in text and "2 projects created" in text
    assert f"kept {name} · alice" in text and "1 annotations" in text
    now = ls_projects(ls_client, f"{name} · ")
    assert sorted(t.split(" · ")[1].split(" ")[0] for t in now) == ["alice", "carol", "dave"]
    with Session(engine) as s:
        rnd = s.exec(select(LabelRound).where(LabelRound.name == name)).one()
        assert rnd.params["coders"] == ["carol", "dave"]
        assert s.exec(select(func.count()).select_from(LsTask)).one() == 4
    same = cli_ls("label", "push", "--sample", "other", "--round", name, "--coders", "carol,dave")
    assert same.exit_code == 0 and "0 projects created" in same.output and "removed" not in same.output


def test_pull_refuses_every_unexpected_answer_without_storing_or_moving_a_cursor(
    cli_ls,
    proxy: FaultProxy,
    engine,
    ls_client,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr("labeling.client.PAGE", 2)  # several pages with a few tasks
    make_sample(engine, "shape", 3, start=800)
    name = f"shape-{backend}"
    assert cli_ls("label", "push", "--sample", "shape", "--round", name, "--coders", "alice,bob").exit_code == 0
    users, tasks, _ = recorded(engine)
    items = sorted(tasks["alice"])
    for coder in ("alice", "bob"):
        ls_client.annotations.create(
            id=tasks[coder][items[0]],
            result=result_for((1, "Crash"), (10, "Algorithmic Error")),
            completed_by=users[coder],
        )
    first = cli_ls("label", "pull", "--round", name)
    assert first.exit_code == 0 and "2 new" in first.output, first.output
    for coder in ("alice", "bob"):
        for item in items[1:]:
            ls_client.annotations.create(
                id=tasks[coder][item],
                result=result_for((2, "Wrong Model"), (2, "Incompatibility")),
                completed_by=users[coder],
            )
    before = snapshot(engine)
    assert all(cursor is not None for _, cursor in before[1])

    def bad_results(page: dict[str, Any]) -> dict[str, Any]:
        return {
            **page,
            "tasks": [
                {**t, "annotations": [{**a, "result": {"choices": "x"}} for a in t["annotations"]]}
                for t in page["tasks"]
            ],
        }

    cases = [
        (
            Fault("GET", TASKS, body=lambda page: {"items": page["tasks"], "total": page["total"]}),
            "tasks: Field required",
        ),
        (Fault("GET", TASKS, body=lambda page: page["tasks"]), "the answer: Input should be an object (got a list)"),
        (Fault("GET", TASKS, body=lambda page: {**page, "tasks": page["tasks"][:-1]}), "although it announced"),
        (Fault("GET", TASKS, after=1, body=bad_results), "annotations.0.result"),  # bob's project, after alice's
        (Fault("GET", TASKS, after=1, status=500, body={"detail": "boom"}, times=3), "HTTP 500 to GET /api/tasks/"),
        (Fault("GET", TASKS, raw=b"<html>gateway</html>"), "with an answer that is not JSON"),
    ]
    for fault, fragment in cases:
        proxy.clear()
        proxy.add(fault)
        failed = cli_ls("label", "pull", "--round", name)
        one_error(failed, "GET /api/tasks/ (project", fragment, "nothing was stored and no last-pulled time moved")
        assert snapshot(engine) == before, fragment
    proxy.clear()
    ok = cli_ls("label", "pull", "--round", name)
    text = " ".join(ok.output.split())
    assert ok.exit_code == 0 and "4 new, 0 changed" in text, ok.output  # nothing was skipped by the failed pulls


def test_tasks_adopted_after_a_failed_re_push_are_pulled_with_their_annotations(
    cli_ls,
    proxy: FaultProxy,
    engine,
    ls_client,
    backend: str,  # type: ignore[no-untyped-def]
) -> None:
    make_sample(engine, "grow", 2, start=900)
    name = f"grow-{backend}"
    assert cli_ls("label", "push", "--sample", "grow", "--round", name, "--coders", "alice").exit_code == 0
    assert cli_ls("label", "pull", "--round", name).exit_code == 0
    with Session(engine) as s:  # the sample grows by one issue
        sample = s.exec(select(IssueSample).where(IssueSample.name == "grow")).one()
        repo = s.exec(select(Repository)).one()
        issue = Issue(repository_id=repo.id, number=902, title="new", hydrated=True, body="b", labels=[])
        s.add(issue)
        s.flush()
        s.add(IssueSampleMember(sample_id=sample.id, issue_id=issue.id, position=2))
        s.commit()
    proxy.add(Fault("POST", IMPORT, status=500, body={"detail": "boom"}, forward=True))
    failed = cli_ls("label", "push", "--sample", "grow", "--round", name, "--coders", "alice")
    one_error(failed, "HTTP 500 to POST", "nothing was recorded")
    users, tasks, _ = recorded(engine)
    project = ls_projects(ls_client, f"{name} · alice")
    (ls_project,) = project.values()
    orphan = next(t for t in ls_client.tasks.list(project=ls_project.id) if t.id not in tasks["alice"].values())
    assert orphan.data["number"] == 902
    # the coder annotates the task the database does not know yet; a pull cannot place it and moves on
    ls_client.annotations.create(
        id=orphan.id, result=result_for((1, "Crash"), (4, "Tensor Shape Problem")), completed_by=users["alice"]
    )
    blind = cli_ls("label", "pull", "--round", name)
    assert blind.exit_code == 0 and "1 tasks not created by `interop label push`" in " ".join(blind.output.split())
    again = cli_ls("label", "push", "--sample", "grow", "--round", name, "--coders", "alice")
    assert again.exit_code == 0 and "1 tasks adopted" in again.output and "0 new tasks, 3 in all" in again.output
    assert ls_client.projects.get(id=ls_project.id).task_number == 3
    pulled = cli_ls("label", "pull", "--round", name)
    assert "1 new" in " ".join(pulled.output.split()), pulled.output  # adoption reset the cursor: not skipped


def _with_note(result: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    return [r for r in result if r["from_name"] != "note"] + [
        {"from_name": "note", "to_name": "body", "type": "textarea", "value": {"text": [note]}}
    ]


def test_review_keeps_the_note_the_evidence_and_every_decision(
    cli_ls,
    proxy: FaultProxy,
    engine,
    ls_client,
    backend: str,  # type: ignore[no-untyped-def]
) -> None:
    make_sample(engine, "rev", 3, start=1100)
    name = f"rev-{backend}"
    assert cli_ls("label", "push", "--sample", "rev", "--round", name, "--coders", "alice,bob").exit_code == 0
    users, tasks, refs = recorded(engine)
    agree, on_cause, on_symptom = sorted(tasks["alice"])
    crash, wrong = (1, "Crash"), (2, "Wrong Model")
    shape, algo = (4, "Tensor Shape Problem"), (10, "Algorithmic Error")
    plan = {
        "alice": {agree: (crash, shape), on_cause: (crash, shape), on_symptom: (crash, algo)},
        "bob": {agree: (crash, shape), on_cause: (crash, algo), on_symptom: (wrong, algo)},
    }
    for coder, items in plan.items():
        for item, codes in items.items():
            ls_client.annotations.create(id=tasks[coder][item], result=result_for(*codes), completed_by=users[coder])
    assert "6 new" in " ".join(cli_ls("label", "pull", "--round", name).output.split())

    # the review import reaches Label Studio but its answer is lost: nothing changes here, the retry adopts it
    proxy.add(Fault("POST", IMPORT, status=500, body={"detail": "boom"}, forward=True))
    failed = cli_ls("label", "adjudicate", "--round", name, "--review")
    one_error(failed, "HTTP 500 to POST /api/projects/", "no final label was changed")
    assert snapshot(engine)[0][-1] == 0 and snapshot(engine)[2] == 0
    opened = cli_ls("label", "adjudicate", "--round", name, "--review")
    text = " ".join(opened.output.split())
    assert opened.exit_code == 0 and "final labels 7 new" in text and "2 items open" in text, opened.output
    with Session(engine) as s:
        review = s.exec(select(LsProject).where(LsProject.purpose == "review")).one()
    assert ls_client.projects.get(id=review.ls_project_id).task_number == 2  # adopted, not imported twice
    review_tasks = {t.data["item_ref"]: t.id for t in ls_client.tasks.list(project=review.ls_project_id)}
    reviewer = ls_client.users.whoami()
    decided = ls_client.annotations.create(
        id=review_tasks[refs[on_cause]],
        result=_with_note(result_for(crash, algo), "the shape error is a symptom; the cause is the algorithm"),
        completed_by=reviewer.id,
    )
    broken = result_for(crash, algo)
    broken[0] = {**broken[0], "value": {"choices": ["99 Gremlins"]}}
    ls_client.annotations.create(id=review_tasks[refs[on_symptom]], result=broken, completed_by=reviewer.id)

    settled = cli_ls("label", "adjudicate", "--round", name, "--review")
    text = " ".join(settled.output.split())
    who = reviewer.username or reviewer.email
    assert settled.exit_code == 0 and "1 items open" in text, settled.output
    assert f"invalid review {refs[on_symptom]} by {who}" in text and "unknown choice '99 Gremlins'" in text
    finals = json.loads(cli_ls("label", "finals", "--round", name, "--item", refs[on_cause], "--format", "json").output)
    cause = next(f for f in finals if f["dimension"] == "cause")
    assert cause["decided_by"] == f"review:{who}" and cause["code"] == 10
    assert cause["note"] == "the shape error is a symptom; the cause is the algorithm"
    assert cause["detail"]["disagreement"] is True
    assert {c["coder"]: c["code"] for c in cause["detail"]["codings"]} == {"alice": 4, "bob": 10}
    assert cause["detail"]["review"]["ls_annotation_id"] == decided.id
    symptom = next(f for f in finals if f["dimension"] == "symptom")
    assert symptom["detail"]["disagreement"] is False and symptom["note"] == cause["note"]

    # the reviewer changes their mind: the decision changes, the history keeps both with who and when
    ls_client.annotations.update(id=decided.id, result=_with_note(result_for(crash, shape), "second look: shapes"))
    changed = cli_ls("label", "adjudicate", "--round", name, "--review")
    assert "final labels 0 new, 3 changed" in " ".join(changed.output.split()), changed.output
    history = json.loads(
        cli_ls("label", "finals", "--round", name, "--item", refs[on_cause], "--history", "--format", "json").output
    )
    steps = [
        (h["action"], h["previous_code"], h["code"], h["decided_by"], h["note"])
        for h in history
        if h["dimension"] == "cause"
    ]
    assert steps == [
        ("new", None, 10, f"review:{who}", "the shape error is a symptom; the cause is the algorithm"),
        ("changed", 10, 4, f"review:{who}", "second look: shapes"),
    ]
    symptom_steps = [(h["action"], h["decided_by"]) for h in history if h["dimension"] == "symptom"]
    assert symptom_steps == [("new", "agreement"), ("changed", f"review:{who}"), ("changed", f"review:{who}")]
    assert all(h["run_id"] for h in history)
