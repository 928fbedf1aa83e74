"""Model-assisted coding (`label suggest`): seeded cross-validation against a majority baseline on built data,
predictions stored apart from codings (both backends), and pushed to Label Studio only in non-blind rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from db.engine import session_scope
from db.models.github import Issue, Repository
from db.models.labeling import Coder, Coding, LabelRound, LsProject, LsTask, Prediction
from labeling.codebook import read_codebook
from labeling.finals import Decision, write_final_labels
from labeling.labelstudio import check_result
from labeling.store import (
    codebook_version,
    ensure_coder,
    ensure_issue_item,
    ensure_round,
    store_codebook,
    upsert_coding,
)
from labeling.suggest import cross_validate, model_agreement, store_predictions
from tests.support.labeling import make_sample, result_for

# Words that give a code away, and filler every title shares: a classifier can learn the first, not the second.
CRASH, WRONG = "RuntimeError crash aborts", "outputs differ mismatch wrong values"
SHAPE, OPSET = "dynamic shape rank axes", "unsupported operator opset version"
FILLER = ["export of the model", "converting my network", "onnx conversion", "torch.onnx.export call"]


def built(n: int = 40) -> tuple[list[str], list[int], list[int]]:
    """Texts with a symptom and a cause word each (seeded by position), and their symptom and cause codes."""
    texts, symptoms, causes = [], [], []
    for i in range(n):
        symptom = 1 if i % 2 == 0 else 2
        cause = 2 if i % 3 == 0 else 4
        words = (
            (CRASH if symptom == 1 else WRONG).split()[i % 3] + " " + (OPSET if cause == 2 else SHAPE).split()[i % 4]
        )
        texts.append(f"{FILLER[i % 4]} {words} #{i}")
        symptoms.append(symptom)
        causes.append(cause)
    return texts, symptoms, causes


# --- the model, no database -----------------------------------------------------------------------------------


def test_cross_validation_is_deterministic_under_a_seed() -> None:
    texts, symptoms, _ = built()
    first = cross_validate("symptom", texts, symptoms, seed=7)
    again = cross_validate("symptom", texts, symptoms, seed=7)
    assert first.skipped is None
    assert first.as_row() == again.as_row()


def test_a_learnable_dimension_beats_the_baseline_and_an_unlearnable_one_does_not() -> None:
    texts, symptoms, causes = built()
    learnable = cross_validate("symptom", texts, symptoms, seed=0)
    assert learnable.macro_f1 is not None and learnable.baseline_macro_f1 is not None
    assert learnable.macro_f1 > learnable.baseline_macro_f1
    assert learnable.kappa is not None and learnable.kappa > (learnable.baseline_kappa or 0.0)
    assert learnable.beats_baseline is True
    assert learnable.baseline_kappa == 0.0  # the majority baseline never agrees beyond chance
    # the same text for every item: nothing to learn, so no κ above the baseline's
    same = cross_validate("cause", ["onnx export"] * len(causes), causes, seed=0)
    assert same.kappa is not None and same.kappa <= (same.baseline_kappa or 0.0) + 1e-9
    assert same.beats_baseline is False


def test_a_dimension_with_too_few_examples_per_code_is_skipped_with_the_counts() -> None:
    score = cross_validate("incompatibility_type", ["a", "b", "c", "d", "e", "f", "g"], [2, 2, 2, 2, 2, 1, 1])
    assert score.skipped is not None and "1 code(s) with ≥ 5 items" in score.skipped and "1: 2" in score.skipped
    assert score.beats_baseline is None and score.rare == {1: 2}


# --- the database: training on final labels, predictions apart from codings -------------------------------------


def load_codebook(engine: Engine, shared_dir: Path) -> None:
    with session_scope(engine) as s:
        store_codebook(s, read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml"))


def reference_round(engine: Engine, name: str, n: int = 40, repository: str = "onnx/tensorflow-onnx") -> list[int]:
    """A sheet round of `n` built issues with final labels (symptom, cause, its condition, component); item ids."""
    texts, symptoms, causes = built(n)
    items = []
    with session_scope(engine) as s:
        book = codebook_version(s)
        rnd = ensure_round(s, name, book, "sheet", params={"file": "built.xlsx"})
        repo = Repository(full_name=repository)
        s.add(repo)
        s.flush()
        decisions = {}
        for i, (text, symptom, cause) in enumerate(zip(texts, symptoms, causes, strict=True)):
            issue = Issue(repository_id=repo.id or 0, number=i + 1, title=text, hydrated=False)
            s.add(issue)
            s.flush()
            item = ensure_issue_item(s, issue, repository)
            items.append(item.id or 0)
            codes = {"symptom": symptom, "cause": cause, "component": 1 + i % 2}
            if cause == 2:
                codes["incompatibility_type"] = 2
            for key, code in codes.items():
                decisions[(item.id or 0, book.dimension_ids[key])] = Decision(book.code_ids[(key, code)], "sheet")
        write_final_labels(s, rnd.id or 0, decisions)
    return items


def test_dry_run_on_final_labels_is_deterministic_and_stores_nothing(engine: Engine, cli, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    load_codebook(engine, shared_dir)
    reference_round(engine, "reference")
    runs = [
        cli("label", "suggest", "--from", "reference", "--dry-run", "--seed", "3", "--format", "json") for _ in "ab"
    ]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    first, second = (json.loads(r.output) for r in runs)
    assert first["dimensions"] == second["dimensions"] and first["model_version"] == second["model_version"]
    assert first["model_version"].startswith("tfidf-logreg-") and first["training_items"] == 40
    dims = {d["dimension"]: d for d in first["dimensions"]}
    assert dims["symptom"]["beats_baseline"] is True
    assert dims["incompatibility_type"]["items"] == 14  # only where cause = Incompatibility (its condition)
    assert "too few examples" in dims["incompatibility_type"]["skipped"]  # one code only
    table = cli("label", "suggest", "--from", "reference", "--dry-run", "--seed", "3")
    assert table.exit_code == 0 and "skipped incompatibility_type: too few examples" in " ".join(table.output.split())
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Prediction)).one() == 0
    csv = cli("label", "suggest", "--from", "reference", "--dry-run", "--format", "csv")
    assert csv.output.splitlines()[0].startswith("dimension,items,codes,accuracy,baseline_accuracy")
    assert cli("label", "suggest", "--from", "reference").exit_code == 2  # pushing needs --round
    nope = cli("label", "suggest", "--from", "nope", "--dry-run")
    assert nope.exit_code == 2 and "no round named 'nope'" in nope.output


def test_predictions_are_stored_apart_and_never_count_as_a_coder(engine: Engine, cli, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    load_codebook(engine, shared_dir)
    items = reference_round(engine, "reference", n=12)
    with session_scope(engine) as s:
        book = codebook_version(s)
        rnd = ensure_round(s, "coded", book, "sheet", params={"file": "coders.xlsx"})
        for coder, shift in (("alice", 0), ("bob", 1)):
            c = ensure_coder(s, coder)
            for n, item in enumerate(items):
                symptom = 1 + (n + shift * (n % 3 == 0)) % 2
                values = {book.dimension_ids["symptom"]: book.code_ids[("symptom", symptom)]}
                upsert_coding(s, rnd.id or 0, item, c.id or 0, values)
        predicted = {item: {"symptom": (1 + n % 2, 0.8)} for n, item in enumerate(items)}
        counts = store_predictions(s, rnd.id or 0, book, "tfidf-logreg-test", predicted)
        assert counts == {"new": 12, "changed": 0, "unchanged": 0}
        assert store_predictions(s, rnd.id or 0, book, "tfidf-logreg-test", predicted)["unchanged"] == 12
    coders = json.loads(cli("label", "agreement", "--round", "coded", "--format", "json", "--bootstrap", "0").output)
    assert [r["coders"] for r in coders["summary"]] == ["alice,bob"]  # the model is no coder
    version, frame = model_agreement(engine, "coded", n_boot=50)
    assert version == "tfidf-logreg-test"
    rows = {r.rater: r for r in frame.itertuples(index=False)}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"].percent_agreement == 1.0 and rows["alice"].items == 12
    assert rows["bob"].percent_agreement == pytest.approx(8 / 12)
    shown = cli("label", "agreement", "--round", "coded", "--model", "--format", "csv", "--bootstrap", "20")
    assert shown.exit_code == 0 and shown.output.splitlines()[0].startswith("round,dimension,rater,model_version")
    missing = cli("label", "agreement", "--round", "reference", "--model")
    assert missing.exit_code == 2 and "no predictions in round 'reference'" in missing.output


# --- real Label Studio ----------------------------------------------------------------------------------------


@pytest.fixture
def ls_env(label_studio, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", label_studio.token)
    return label_studio


@pytest.mark.labelstudio
def test_predictions_reach_a_non_blind_round_only_and_are_never_pulled_as_codings(  # type: ignore[no-untyped-def]
    ls_env, engine: Engine, cli, ls_client, shared_dir: Path, backend: str
) -> None:
    load_codebook(engine, shared_dir)
    reference_round(engine, "reference")
    make_sample(engine, "open", 4, start=300)
    make_sample(engine, "closed", 2, repository="onnx/onnx", start=400)
    shown, blind = f"shown-{backend}", f"blind-{backend}"
    pushed = cli("label", "push", "--sample", "open", "--round", shown, "--coders", "alice,bob", "--predictions")
    assert pushed.exit_code == 0, pushed.output
    assert cli("label", "push", "--sample", "closed", "--round", blind, "--coders", "alice").exit_code == 0
    switched = cli("label", "push", "--sample", "closed", "--round", blind, "--coders", "alice", "--predictions")
    assert switched.exit_code == 2 and "was pushed blind" in switched.output

    # a blind round is refused: one line, nothing in Label Studio or the database
    refused = cli("label", "suggest", "--round", blind, "--from", "reference")
    assert refused.exit_code == 2 and refused.output.count("error:") == 1 and "is blind" in refused.output
    with Session(engine) as s:
        blind_tasks = s.exec(
            select(LsTask.ls_task_id)
            .join(LsProject, LsProject.id == LsTask.project_id)
            .join(LabelRound, LabelRound.id == LsProject.round_id)
            .where(LabelRound.name == blind)
        ).all()
        assert s.exec(select(func.count()).select_from(Prediction)).one() == 0
    assert all(not ls_client.predictions.list(task=t) for t in blind_tasks)

    out = cli("label", "suggest", "--round", shown, "--from", "reference", "--format", "json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    version = report["model_version"]
    assert report["tasks_pushed"] == 8 and report["target_items"] == 4 and report["stored"]["new"] >= 4 * 3
    spec = read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml")
    with Session(engine) as s:
        round_id = s.exec(select(LabelRound.id).where(LabelRound.name == shown)).one()
        projects = {
            s.get(Coder, p.coder_id).name: p for p in s.exec(select(LsProject).where(LsProject.round_id == round_id))
        }
        tasks = {
            name: [t.ls_task_id for t in s.exec(select(LsTask).where(LsTask.project_id == p.id))]
            for name, p in projects.items()
        }
        stored = s.exec(select(Prediction)).all()
        users = {c.name: c.ls_user_id for c in s.exec(select(Coder)).all()}
    assert {p.model_version for p in stored} == {version} and all(0 < p.score <= 1 for p in stored)
    for name, ids in tasks.items():
        assert ls_client.projects.get(id=projects[name].ls_project_id).show_collab_predictions is True
        for task_id in ids:
            preds = ls_client.predictions.list(task=task_id)
            assert [p.model_version for p in preds] == [version]
            # valid codes, conditions respected; only the skipped dimension (one code in training) stays open
            problems = check_result(preds[0].result, spec).problems
            assert all(p == "'incompatibility_type' is required here but not answered" for p in problems), problems
            assert preds[0].score is not None and 0 < preds[0].score <= 1

    again = json.loads(cli("label", "suggest", "--round", shown, "--from", "reference", "--format", "json").output)
    assert again["tasks_pushed"] == 0 and again["tasks_had_version"] == 8 and again["stored"]["new"] == 0
    assert all(len(ls_client.predictions.list(task=t)) == 1 for ids in tasks.values() for t in ids)

    # coders annotate one task each; a pull stores their annotations only, never the predictions
    for name in ("alice", "bob"):
        ls_client.annotations.create(
            id=tasks[name][0], result=result_for((1, "Crash"), (4, "Tensor Shape Problem")), completed_by=users[name]
        )
    pulled = cli("label", "pull", "--round", shown)
    assert pulled.exit_code == 0 and "16 tasks read" not in pulled.output
    assert "8 tasks read, 2 new" in " ".join(pulled.output.split())
    with Session(engine) as s:
        codings = s.exec(select(Coding).join(LabelRound).where(LabelRound.name == shown)).all()
        assert len(codings) == 2 and all(c.ls_annotation_id for c in codings)
    coders = json.loads(cli("label", "agreement", "--round", shown, "--format", "json", "--bootstrap", "0").output)
    assert {r["coders"] for r in coders["summary"]} == {"alice,bob"}
    model = json.loads(cli("label", "agreement", "--round", shown, "--model", "--format", "json").output)
    assert {r["rater"] for r in model} == {"alice", "bob"} and {r["model_version"] for r in model} == {version}
