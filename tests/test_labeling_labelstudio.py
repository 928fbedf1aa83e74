"""Label Studio rounds against the real server: push to two coders, annotate as each, pull, agree, re-run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from db.models.labeling import Coder, Coding, CodingValue, LabelRound, LsProject, LsTask
from db.queries.labeling import LabelFilter, final_labels
from labeling.codebook import read_codebook
from labeling.labelstudio import check_result, choice_value
from labeling.sync import assign
from tests.support.labeling import choice, make_sample, result_for

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def ls_env(label_studio, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", label_studio.token)
    return label_studio


@pytest.fixture
def codebook_loaded(cli, shared_dir: Path):  # type: ignore[no-untyped-def]
    result = cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert result.exit_code == 0, result.output
    return cli


SYMPTOMS = [(1, "Crash"), (2, "Wrong Model"), (6, "Unreported")]
CAUSES = [(2, "Incompatibility"), (4, "Tensor Shape Problem"), (10, "Algorithmic Error")]


def planned_codes(i: int, coder: str) -> tuple[tuple[int, str], tuple[int, str]]:
    """Deterministic codes: bob disagrees with alice on the cause of every 4th item, on the symptom of every 5th."""
    symptom = SYMPTOMS[i % 3]
    cause = CAUSES[i % 3]
    if coder == "bob" and i % 4 == 1:
        cause = CAUSES[(i + 1) % 3]
    if coder == "bob" and i % 5 == 2:
        symptom = SYMPTOMS[(i + 1) % 3]
    return symptom, cause


def test_pilot_round_end_to_end(ls_env, codebook_loaded, engine, ls_client, backend: str) -> None:  # type: ignore[no-untyped-def]
    cli = codebook_loaded
    n = 20
    make_sample(engine, "pilot-sample", n)
    round_name = f"pilot-{backend}"
    pushed = cli("label", "push", "--sample", "pilot-sample", "--round", round_name, "--coders", "alice,bob")
    assert pushed.exit_code == 0, pushed.output
    assert f"{n} items, {n} coded by several coders" in pushed.output
    with Session(engine) as s:
        projects = {s.get(Coder, p.coder_id).name: p for p in s.exec(select(LsProject)).all()}
        assert set(projects) == {"alice", "bob"}
        users = {c.name: c.ls_user_id for c in s.exec(select(Coder)).all()}
        tasks = {
            name: {t.item_id: t.ls_task_id for t in s.exec(select(LsTask).where(LsTask.project_id == p.id))}
            for name, p in projects.items()
        }
    assert all(len(t) == n for t in tasks.values()) and all(users.values())
    # the generated project: a single-choice control per dimension, conditional ones, a note, the issue rendered
    project = ls_client.projects.get(id=projects["alice"].ls_project_id)
    config = project.label_config
    for dim in ("symptom", "cause", "incompatibility_type", "type_problem_type", "component"):
        assert f'<Choices name="{dim}"' in config
    assert 'whenTagName="cause" whenChoiceValue="2 Incompatibility"' in config
    assert '<TextArea name="note"' in config and 'value="$body"' in config and 'value="$link"' in config
    task = next(iter(ls_client.tasks.list(project=project.id)))
    assert task.data["title"].startswith("pytorch/pytorch#10") and "module: onnx" in task.data["labels"]
    assert "https://github.com/pytorch/pytorch/issues/10" in task.data["link"]

    # code every task as its coder (~130 ms per annotation), plus a few annotations the server wrongly accepts
    item_order = sorted(tasks["alice"])
    for coder in ("alice", "bob"):
        for i, item_id in enumerate(item_order):
            symptom, cause = planned_codes(i, coder)
            res = result_for(symptom, cause)
            if coder == "bob" and i == n - 1:
                res[0]["value"]["choices"].append(choice_value(2, "Wrong Model"))  # two choices, single control
            if coder == "bob" and i == n - 2:
                res.append(choice("severity", 1, "High"))  # a control the codebook does not have
            if coder == "alice" and i == n - 3:
                res[1] = choice("cause", 99, "Gremlins")  # a choice the codebook does not have
            ls_client.annotations.create(id=tasks[coder][item_id], result=res, completed_by=users[coder])

    pulled = cli("label", "pull", "--round", round_name)
    assert pulled.exit_code == 0, pulled.output
    out = " ".join(pulled.output.split())
    assert f"{2 * n} tasks read, {2 * n} new" in out
    assert "3 invalid" in out
    assert "is single-choice but has 2 choices" in out
    assert "unknown control 'severity'" in out
    assert "unknown choice '99 Gremlins' for 'cause'" in out
    with Session(engine) as s:
        codings = s.exec(select(Coding)).all()
        assert len(codings) == 2 * n and sum(not c.valid for c in codings) == 3
        assert all(c.ls_annotation_id and c.ls_task_id and c.updated_at for c in codings)
        assert {c.note for c in codings if c.valid} == {"checked"}
        invalid_values = s.exec(
            select(func.count())
            .select_from(CodingValue)
            .join(Coding, Coding.id == CodingValue.coding_id)
            .where(Coding.valid.is_(False))
        ).one()
        assert invalid_values == 0

    # agreement equals an independent computation over the items both coded validly
    bad = {("bob", n - 1), ("bob", n - 2), ("alice", n - 3)}
    both = [i for i in range(n) if ("alice", i) not in bad and ("bob", i) not in bad]
    agreement = cli("label", "agreement", "--round", round_name, "--format", "json", "--bootstrap", "100")
    summary = {r["dimension"]: r for r in json.loads(agreement.output)["summary"]}
    for dim, k in (("symptom", 0), ("cause", 1)):
        pairs = [(planned_codes(i, "alice")[k][0], planned_codes(i, "bob")[k][0]) for i in both]
        po = sum(a == b for a, b in pairs) / len(pairs)
        cats = {c for p in pairs for c in p}
        pe = sum(sum(a == c for a, _ in pairs) * sum(b == c for _, b in pairs) for c in cats) / len(pairs) ** 2
        assert summary[dim]["items"] == len(both)
        assert summary[dim]["percent_agreement"] == pytest.approx(po)
        assert summary[dim]["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))

    # re-push and re-pull change nothing
    def snapshot() -> tuple[int, ...]:
        with Session(engine) as s:
            return tuple(
                s.exec(select(func.count()).select_from(t)).one()
                for t in (LsProject, LsTask, Coding, CodingValue, LabelRound)
            )

    before = snapshot()
    tasks_in_ls = ls_client.projects.get(id=projects["alice"].ls_project_id).task_number
    again = cli("label", "push", "--sample", "pilot-sample", "--round", round_name, "--coders", "alice,bob")
    assert "0 projects created" in again.output and "0 new tasks" in again.output
    repull = cli("label", "pull", "--round", round_name)
    assert " 0 new, 0 changed" in " ".join(repull.output.split())
    assert snapshot() == before
    assert ls_client.projects.get(id=projects["alice"].ls_project_id).task_number == tasks_in_ls

    # a coder fixes the invalid annotation: the next pull stores it as valid, and only it changes
    with Session(engine) as s:
        broken = s.exec(
            select(Coding).where(
                Coding.valid.is_(False), Coding.coder_id == s.exec(select(Coder.id).where(Coder.name == "alice")).one()
            )
        ).one()
        annotation_id = broken.ls_annotation_id
    ls_client.annotations.update(id=annotation_id, result=result_for(*planned_codes(n - 3, "alice")))
    fixed = cli("label", "pull", "--round", round_name)
    assert "0 new, 1 changed" in " ".join(fixed.output.split())
    with Session(engine) as s:
        assert sum(not c.valid for c in s.exec(select(Coding)).all()) == 2

    # adjudicate: agreement is final, disagreements go to a review project, items lacking a valid coding wait
    waiting = {n - 1, n - 2}
    disagree = [i for i in range(n) if i not in waiting and planned_codes(i, "alice") != planned_codes(i, "bob")]
    adj = cli("label", "adjudicate", "--round", round_name, "--review")
    text = " ".join(adj.output.split())
    assert adj.exit_code == 0, adj.output
    assert f"{len(disagree)} items open, 2 waiting" in text and f"{len(disagree)} sent to review project" in text
    with Session(engine) as s:
        review = s.exec(select(LsProject).where(LsProject.purpose == "review")).one()
    review_tasks = list(ls_client.tasks.list(project=review.ls_project_id))
    assert sorted(t.data["number"] - 1000 for t in review_tasks) == disagree
    assert "Disagreement on" in review_tasks[0].data["codings"]
    reviewer = ls_client.users.whoami()
    for t in review_tasks:
        ls_client.annotations.create(
            id=t.id, result=result_for(*planned_codes(t.data["number"] - 1000, "alice")), completed_by=reviewer.id
        )
    settled = cli("label", "adjudicate", "--round", round_name, "--review")
    text = " ".join(settled.output.split())
    assert "0 items open" in text and "0 sent to review" in text
    labels = final_labels(engine, LabelFilter(rounds=(round_name,)))
    reviewed = labels[labels["decided_by"].str.startswith("review:")]
    assert sorted(set(reviewed["number"] - 1000)) == disagree
    assert set(reviewed["decided_by"]) == {f"review:{reviewer.username or reviewer.email}"}
    assert set(labels["number"] - 1000) == set(range(n)) - waiting
    final_again = cli("label", "adjudicate", "--round", round_name)  # offline: review decisions are kept
    assert "final labels 0 new, 0 changed, 0 withdrawn" in final_again.output


def test_annotation_by_another_user_is_rejected(ls_env, codebook_loaded, engine, ls_client, backend: str) -> None:  # type: ignore[no-untyped-def]
    cli = codebook_loaded
    make_sample(engine, "tiny", 2, start=50)
    round_name = f"blind-{backend}"
    assert cli("label", "push", "--sample", "tiny", "--round", round_name, "--coders", "carol,dave").exit_code == 0
    with Session(engine) as s:
        carol = s.exec(select(Coder).where(Coder.name == "carol")).one()
        dave = s.exec(select(Coder).where(Coder.name == "dave")).one()
        project = s.exec(select(LsProject).where(LsProject.coder_id == carol.id)).one()
        task_id = s.exec(select(LsTask.ls_task_id).where(LsTask.project_id == project.id)).first()
    ls_client.annotations.create(
        id=task_id, result=result_for((1, "Crash"), (4, "Tensor Shape Problem")), completed_by=dave.ls_user_id
    )
    pulled = cli("label", "pull", "--round", round_name)
    text = " ".join(pulled.output.split())
    assert "1 invalid" in text and f"not carol (user {carol.ls_user_id})" in text


def test_partial_overlap_assignment_is_balanced_and_stable() -> None:
    items = list(range(100))
    plan = assign(items, ["a", "b", "c"], overlap=0.2, per_item=2, seed=3, existing={})
    multi = [i for i, who in plan.items() if len(who) > 1]
    assert len(multi) == 20 and all(len(who) == 2 for i, who in plan.items() if i in multi)
    loads = [sum(c in who for who in plan.values()) for c in "abc"]
    assert sum(loads) == 120 and max(loads) - min(loads) <= 1
    assert plan == assign(items, ["a", "b", "c"], overlap=0.2, per_item=2, seed=3, existing={})
    # growing the sample keeps every earlier assignment
    grown = assign([*items, *range(100, 110)], ["a", "b", "c"], 0.2, 2, 3, existing=plan)
    assert all(grown[i] == plan[i] for i in items)
    assert sum(len(w) > 1 for w in grown.values()) == 22


def test_check_result_validates_against_the_codebook(shared_dir: Path) -> None:
    spec = read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml")
    ok = check_result(result_for((1, "Crash"), (2, "Incompatibility")), spec)
    assert ok.valid and ok.codes == {"symptom": 1, "cause": 2, "component": 1, "incompatibility_type": 2}
    missing = check_result(
        [
            choice("symptom", 1, "Crash"),
            choice("cause", 2, "Incompatibility"),
            choice("component", 1, "Node Conversion"),
        ],
        spec,
    )
    assert missing.problems == ["'incompatibility_type' is required here but not answered"]
    misplaced = check_result(
        [*result_for((1, "Crash"), (4, "Tensor Shape Problem")), choice("incompatibility_type", 1, "Internal")], spec
    )
    assert misplaced.problems == ["'incompatibility_type' answered although its condition does not hold"]
    assert not check_result([], spec).valid


def test_server_down_or_bad_key_is_one_clear_error_and_nothing_written(
    codebook_loaded,
    engine,
    label_studio,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = codebook_loaded
    make_sample(engine, "s", 3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", dead)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", "not-a-real-key-123")
    down = cli("label", "push", "--sample", "s", "--round", "r", "--coders", "a,b")
    assert down.exit_code == 2 and "cannot reach Label Studio at " + dead in " ".join(down.output.split())
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", label_studio.url)
    wrong = cli("label", "pull")
    assert wrong.exit_code == 2 and "rejected the API key (HTTP 401)" in " ".join(wrong.output.split())
    assert "not-a-real-key-123" not in wrong.output and "not-a-real-key-123" not in down.output
    monkeypatch.delenv("INTEROP_LABEL_STUDIO_API_KEY")
    nokey = cli("label", "pull")
    assert nokey.exit_code == 2 and "no Label Studio API key" in nokey.output
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(LabelRound)).one() == 0


def test_push_refuses_unknown_sample_and_changed_settings(ls_env, codebook_loaded, engine, backend: str) -> None:  # type: ignore[no-untyped-def]
    cli = codebook_loaded
    missing = cli("label", "push", "--sample", "nope", "--round", "x", "--coders", "a")
    assert missing.exit_code == 2 and "no issue sample named 'nope'" in missing.output
    make_sample(engine, "s2", 4, start=70)
    name = f"settings-{backend}"
    assert (
        cli("label", "push", "--sample", "s2", "--round", name, "--coders", "erin,frank", "--overlap", "0.5").exit_code
        == 0
    )
    changed = cli("label", "push", "--sample", "s2", "--round", name, "--coders", "erin,frank")
    assert changed.exit_code == 2 and "push with the same settings or start a new round" in " ".join(
        changed.output.split()
    )
    with Session(engine) as s:
        counts = [
            len(s.exec(select(LsTask).where(LsTask.project_id == p.id)).all()) for p in s.exec(select(LsProject)).all()
        ]
    assert sorted(counts) == [3, 3]  # 2 of 4 items to both, the other 2 split one each


@pytest.mark.slow
def test_two_hundred_issues_two_coders(ls_env, codebook_loaded, engine, ls_client, backend: str) -> None:  # type: ignore[no-untyped-def]
    """The issue's full case: 200 issues to two coders, 400 annotations through the API (~1 min per backend)."""
    cli = codebook_loaded
    n = 200
    make_sample(engine, "big", n, start=5000)
    round_name = f"big-{backend}"
    assert cli("label", "push", "--sample", "big", "--round", round_name, "--coders", "gina,hal").exit_code == 0
    with Session(engine) as s:
        users = {c.name: c.ls_user_id for c in s.exec(select(Coder)).all()}
        tasks = {}
        for p in s.exec(select(LsProject)).all():
            name = s.get(Coder, p.coder_id).name
            tasks[name] = {t.item_id: t.ls_task_id for t in s.exec(select(LsTask).where(LsTask.project_id == p.id))}
    order = sorted(tasks["gina"])
    for coder, who in (("gina", "alice"), ("hal", "bob")):
        for i, item_id in enumerate(order):
            ls_client.annotations.create(
                id=tasks[coder][item_id], result=result_for(*planned_codes(i, who)), completed_by=users[coder]
            )
    pulled = cli("label", "pull", "--round", round_name)
    assert f"{2 * n} tasks read, {2 * n} new" in " ".join(pulled.output.split())
    summary = {
        r["dimension"]: r
        for r in json.loads(
            cli("label", "agreement", "--round", round_name, "--format", "json", "--bootstrap", "200").output
        )["summary"]
    }
    pairs = [(planned_codes(i, "alice")[1][0], planned_codes(i, "bob")[1][0]) for i in range(n)]
    po = sum(a == b for a, b in pairs) / n
    pe = sum(sum(a == c for a, _ in pairs) * sum(b == c for _, b in pairs) for c in {1, 2, 4, 10}) / n**2
    assert summary["cause"]["items"] == n
    assert summary["cause"]["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert " 0 new, 0 changed" in " ".join(cli("label", "pull", "--round", round_name).output.split())


def test_push_that_failed_half_way_is_reconciled(ls_env, codebook_loaded, engine, ls_client, backend: str) -> None:  # type: ignore[no-untyped-def]
    """LS keeps projects and tasks when the database transaction of a push rolls back; the next push adopts
    them (projects by their round-unique title, tasks by item_ref) instead of creating duplicates."""
    cli = codebook_loaded
    make_sample(engine, "half", 3, start=300)
    name = f"half-{backend}"
    assert cli("label", "push", "--sample", "half", "--round", name, "--coders", "ivy,jon").exit_code == 0
    with Session(engine) as s:
        ls_ids = sorted(p.ls_project_id for p in s.exec(select(LsProject)).all())
        for t in s.exec(select(LsTask)).all():  # what a rolled-back second transaction leaves behind
            s.delete(t)
        s.flush()
        for p in s.exec(select(LsProject)).all():
            s.delete(p)
        s.commit()
    again = cli("label", "push", "--sample", "half", "--round", name, "--coders", "ivy,jon")
    assert again.exit_code == 0, again.output
    assert "0 projects created" in again.output and "6 tasks adopted" in again.output
    assert "0 new tasks, 3 in all" in again.output
    with Session(engine) as s:
        assert sorted(p.ls_project_id for p in s.exec(select(LsProject)).all()) == ls_ids
        assert len(s.exec(select(LsTask)).all()) == 6
    assert [ls_client.projects.get(id=i).task_number for i in ls_ids] == [3, 3]


def test_a_round_keeps_its_codebook_version_after_a_newer_one_is_loaded(
    ls_env,
    codebook_loaded,
    engine,
    ls_client,  # type: ignore[no-untyped-def]
    shared_dir: Path,
    tmp_path: Path,
    backend: str,
) -> None:
    from db.models.labeling import CodebookDimension, CodebookVersion

    cli = codebook_loaded
    make_sample(engine, "kept", 2, start=400)
    name = f"kept-{backend}"
    assert cli("label", "push", "--sample", "kept", "--round", name, "--coders", "kim,lee").exit_code == 0
    with Session(engine) as s:
        kim = s.exec(select(Coder).where(Coder.name == "kim")).one()
        project = s.exec(select(LsProject).where(LsProject.coder_id == kim.id)).one()
        task_ids = s.exec(select(LsTask.ls_task_id).where(LsTask.project_id == project.id)).all()
        kim_user, ls_project = kim.ls_user_id, project.ls_project_id
    config_v1 = ls_client.projects.get(id=ls_project).label_config
    # version 2 renames a cause: on it, the project's config would change and v1's choice would be unknown
    text = (shared_dir / "codebook" / "onnx-converter-failures.yaml").read_text()
    v2 = tmp_path / "book.yaml"
    v2.write_text(text.replace("10: {label: Algorithmic Error,", "10: {label: Logic Error,"))
    assert "stored as version 2" in cli("label", "codebook", "load", str(v2)).output
    for extra in ([], ["--codebook", "onnx-converter-failures"]):
        again = cli("label", "push", "--sample", "kept", "--round", name, "--coders", "kim,lee", *extra)
        assert again.exit_code == 0, again.output
        assert "0 projects created, 0 updated" in again.output
    assert ls_client.projects.get(id=ls_project).label_config == config_v1
    for task_id in task_ids:
        ls_client.annotations.create(
            id=task_id, result=result_for((1, "Crash"), (10, "Algorithmic Error")), completed_by=kim_user
        )
    pulled = cli("label", "pull", "--round", name)
    assert pulled.exit_code == 0, pulled.output
    assert "2 new" in pulled.output and "0 invalid" in pulled.output
    with Session(engine) as s:
        versions = set(
            s.exec(
                select(CodebookVersion.version)
                .join(CodebookDimension, CodebookDimension.version_id == CodebookVersion.id)
                .join(CodingValue, CodingValue.dimension_id == CodebookDimension.id)
            ).all()
        )
    assert versions == {1}
