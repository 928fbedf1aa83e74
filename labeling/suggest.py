"""Model-assisted coding: a TF-IDF text classifier per codebook dimension, trained on final codes, measured by
seeded 5-fold cross-validation against a majority-class baseline, and pushed as Label Studio predictions (never
codings) to the tasks of a round whose coders may see them."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.engine import session_scope
from db.ingest import recorded_run
from db.models.labeling import FinalLabel, LabelItem, LabelRound, LsProject, LsTask, Prediction
from db.queries.labeling import LabelFilter, final_labels, item_texts
from labeling.client import LabelStudioClient, LabelStudioError
from labeling.codebook import DimensionSpec
from labeling.labelstudio import OBJECT, choice_value
from labeling.store import LabelingError, LoadedCodebook, codebook_version, get_round, round_codebook

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


FOLDS = 5
#: A dimension is trained only when at least two of its codes have this many examples (one per test fold).
MIN_PER_CLASS = FOLDS
MODEL = "tfidf-logreg"
#: Fixed before any figure was seen (not tuned on the study's data): word 1–2-grams and character 2–5-grams
#: (within word boundaries), sublinear TF, a class-balanced L2 logistic regression whose probabilities are the scores.
PARAMS: dict[str, Any] = {
    "word": {"ngram_range": [1, 2], "min_df": 1, "sublinear_tf": True, "max_features": 20000},
    "char": {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 2, "sublinear_tf": True, "max_features": 50000},
    "logreg": {"C": 1.0, "class_weight": "balanced", "max_iter": 2000},
}
SHOW_PREDICTIONS = "show_predictions"  # the round parameter `label push --predictions/--blind` sets


# --- text -----------------------------------------------------------------------------------------------------


def issue_text(title: object, body: object, sheet_text: object = None) -> str:
    """What the classifier reads of an issue: title, the study sheet's description (when the item came from a
    sheet) and the body; missing parts are left out."""
    parts = [str(p).strip() for p in (title, sheet_text, body) if p is not None and not pd.isna(p) and str(p).strip()]
    return "\n".join(parts)


def texts_for(engine: Engine, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id → text, from the read model (`db.queries.labeling.item_texts`): the one place that decides which
    stored text (issue, sheet description, discussion) the model reads."""
    frame = item_texts(engine, item_ids)
    return {int(r.item_id): issue_text(r.title, r.body, r.sheet_text) for r in frame.itertuples(index=False)}


# --- the model and its cross-validation --------------------------------------------------------------------------


def build_model(seed: int = 0) -> Pipeline:
    """TF-IDF word and character n-grams into a logistic regression (PARAMS); deterministic for a seed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    word = {**PARAMS["word"], "ngram_range": tuple(PARAMS["word"]["ngram_range"])}
    char = {**PARAMS["char"], "ngram_range": tuple(PARAMS["char"]["ngram_range"])}
    features = FeatureUnion([("word", TfidfVectorizer(**word)), ("char", TfidfVectorizer(**char))])
    return Pipeline([("tfidf", features), ("clf", LogisticRegression(random_state=seed, **PARAMS["logreg"]))])


@dataclass
class DimensionScore:
    """Cross-validated figures of one dimension: the model's and the majority-class baseline's (None: skipped)."""

    dimension: str
    items: int
    codes: int
    accuracy: float | None = None
    macro_f1: float | None = None
    kappa: float | None = None
    baseline_accuracy: float | None = None
    baseline_macro_f1: float | None = None
    baseline_kappa: float | None = None
    rare: dict[int, int] = field(default_factory=dict)  # code → examples, fewer than MIN_PER_CLASS
    skipped: str | None = None

    @property
    def beats_baseline(self) -> bool | None:
        """Whether the model's macro-F1 and κ are both above the baseline's (None when skipped)."""
        if self.skipped or self.macro_f1 is None or self.kappa is None:
            return None
        return self.macro_f1 > (self.baseline_macro_f1 or 0.0) and self.kappa > (self.baseline_kappa or 0.0)

    def as_row(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "items": self.items,
            "codes": self.codes,
            "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "macro_f1": self.macro_f1,
            "baseline_macro_f1": self.baseline_macro_f1,
            "kappa": self.kappa,
            "baseline_kappa": self.baseline_kappa,
            "beats_baseline": self.beats_baseline,
            "rare_codes": ", ".join(f"{c} ({n})" for c, n in sorted(self.rare.items())),
            "skipped": self.skipped or "",
        }


def _scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # κ of a constant prediction is 0/0 → 0 with a warning
        kappa = float(cohen_kappa_score(y, pred))
    return (
        float(accuracy_score(y, pred)),
        float(f1_score(y, pred, average="macro", zero_division=0)),
        0.0 if np.isnan(kappa) else kappa,
    )


def cross_validate(dimension: str, texts: Sequence[str], codes: Sequence[int], seed: int = 0) -> DimensionScore:
    """Stratified 5-fold cross-validation (folds shuffled with `seed`) of the model and of a majority-class
    baseline on the same folds; each item is predicted once by a model that did not see it, and accuracy,
    macro-F1 and Cohen's κ are computed over those out-of-fold predictions. Too few examples: skipped."""
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(codes)
    counts = pd.Series(y).value_counts()
    score = DimensionScore(dimension, len(y), int(counts.size))
    score.rare = {int(c): int(n) for c, n in counts.items() if n < MIN_PER_CLASS}
    enough = int((counts >= MIN_PER_CLASS).sum())
    if enough < 2:
        score.skipped = (
            f"too few examples: {enough} code(s) with ≥ {MIN_PER_CLASS} items (needs 2); "
            f"codes: {', '.join(f'{c}: {n}' for c, n in counts.items())}"
        )
        return score
    x = np.asarray(texts, dtype=object)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only N members": rare above
        model_pred = cross_val_predict(build_model(seed), x, y, cv=folds)
        base_pred = cross_val_predict(DummyClassifier(strategy="most_frequent"), x, y, cv=folds)
    score.accuracy, score.macro_f1, score.kappa = _scores(y, model_pred)
    score.baseline_accuracy, score.baseline_macro_f1, score.baseline_kappa = _scores(y, base_pred)
    return score


def model_version(examples: dict[str, tuple[str, dict[str, int]]]) -> str:
    """`tfidf-logreg-<12 hex>`: a hash of the training data (item ref → text and codes), PARAMS and the
    scikit-learn version, so the same data and settings give the same version (and a re-run adds nothing)."""
    import sklearn

    payload = json.dumps(
        {"data": sorted(examples.items()), "params": PARAMS, "sklearn": sklearn.__version__}, sort_keys=True
    )
    return f"{MODEL}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


# --- the workflow -------------------------------------------------------------------------------------------------


@dataclass
class SuggestReport:
    """What one `label suggest` did: the training data, the cross-validated figures, the predictions made."""

    round: str | None
    from_rounds: list[str]
    seed: int
    model_version: str = ""
    training_items: int = 0
    excluded_items: int = 0  # items of the target round left out of training (no suggestion echoes its own code)
    scores: list[DimensionScore] = field(default_factory=list)
    target_items: int = 0
    predicted: dict[str, int] = field(default_factory=dict)  # dimension → items given a code
    tasks_total: int = 0
    tasks_pushed: int = 0
    tasks_had_version: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    requests: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Training:
    book: LoadedCodebook
    from_rounds: list[str]
    finals: dict[int, dict[str, int]]  # item id → dimension → code
    refs: dict[int, str]


def _from_rounds(session: Session, target: LabelRound | None, wanted: Sequence[str]) -> list[LabelRound]:
    """The rounds whose final codes train the model: those named, else every round with final labels coded with
    the target round's codebook (by name, any version)."""
    if wanted:
        return [get_round(session, name) for name in wanted]
    with_finals = set(session.exec(select(FinalLabel.round_id).distinct()).all())
    rounds = [r for r in session.exec(select(LabelRound).order_by(col(LabelRound.id))).all() if r.id in with_finals]
    if target is not None:
        name = round_codebook(session, target).name
        rounds = [r for r in rounds if round_codebook(session, r).name == name]
    if not rounds:
        raise LabelingError("no round has final labels to train on: adjudicate a round or import the study's sheet")
    return rounds


def _training(
    engine: Engine, session: Session, target: LabelRound | None, wanted: Sequence[str], exclude: set[int]
) -> tuple[_Training, int]:
    """The final codes to train on, keyed by the target round's codebook (codes it lacks are dropped); an item
    decided in several rounds takes its newest decision. Items in `exclude` are left out; returns how many were."""
    rounds = _from_rounds(session, target, wanted)
    books = {round_codebook(session, r).name for r in rounds}
    if target is not None:
        book = round_codebook(session, target)
        other = books - {book.name}
        if other:
            raise LabelingError(
                f"--from rounds are coded with codebook {', '.join(sorted(other))}, round {target.name!r} with "
                f"{book.name!r}: train on rounds of the same codebook"
            )
    elif len(books) > 1:
        raise LabelingError(f"--from rounds use several codebooks ({', '.join(sorted(books))}): choose rounds of one")
    else:
        book = codebook_version(session, books.pop())
    names = [r.name for r in rounds]
    frame = final_labels(engine, LabelFilter(rounds=tuple(names)))
    if frame.empty:
        raise LabelingError(f"no final labels in {', '.join(names)}: adjudicate first (`interop label adjudicate`)")
    frame = frame.sort_values("decided_at", kind="stable")
    finals: dict[int, dict[str, int]] = {}
    refs: dict[int, str] = {}
    excluded: set[int] = set()
    for row in frame.itertuples(index=False):
        item = int(row.item_id)
        if item in exclude:
            excluded.add(item)
            continue
        if (row.dimension, int(row.code)) not in book.code_ids:
            continue  # a code of another codebook version the target's codebook lacks
        finals.setdefault(item, {})[str(row.dimension)] = int(row.code)  # newest decision last: it wins
        refs[item] = str(row.item)
    return _Training(book, names, finals, refs), len(excluded)


def _applies(dim: DimensionSpec, codes: dict[str, int]) -> bool:
    return dim.applies(codes) if dim.required_when else True


def _round_targets(session: Session, rnd: LabelRound) -> tuple[set[int], dict[int, list[tuple[int, int]]]]:
    """Items of the round still to be coded (no final label in it yet), and each coding project's tasks of them:
    LS project id → [(task id, item id)]."""
    decided = set(session.exec(select(FinalLabel.item_id).where(FinalLabel.round_id == rnd.id).distinct()).all())
    rows = session.exec(
        select(LsProject.ls_project_id, LsTask.ls_task_id, LsTask.item_id)
        .join(LsTask, col(LsTask.project_id) == col(LsProject.id))
        .where(LsProject.round_id == rnd.id, LsProject.purpose == "coding")
        .order_by(col(LsProject.id), col(LsTask.id))
    ).all()
    tasks: dict[int, list[tuple[int, int]]] = {}
    for project, task, item in rows:
        if item not in decided:
            tasks.setdefault(project, []).append((task, item))
    return {item for pairs in tasks.values() for _, item in pairs}, tasks


def check_round(rnd: LabelRound) -> None:
    """Predictions go only to Label Studio rounds pushed with `--predictions`: blind coders must not see them."""
    if rnd.source != "labelstudio":
        raise LabelingError(
            f"round {rnd.name!r} is a {rnd.source} round with no Label Studio tasks: name a pushed round, or use "
            "--dry-run to measure the model"
        )
    if not rnd.params.get(SHOW_PREDICTIONS):
        raise LabelingError(
            f"round {rnd.name!r} is blind (pushed without --predictions): its coders must not see model "
            "suggestions; push a new round with `interop label push --predictions`, or use --dry-run"
        )


def suggest(
    engine: Engine,
    connect: Callable[[], LabelStudioClient] | None,
    round_name: str | None,
    from_rounds: Sequence[str] = (),
    seed: int = 0,
    dry_run: bool = False,
) -> SuggestReport:
    """Train per dimension on final codes, cross-validate, and (unless `dry_run`) push each still-uncoded task of
    the round its predicted codes as one Label Studio prediction and store them (table `prediction`). Items of the
    round are never trained on; conditional dimensions are predicted only where the predicted parent codes make
    them apply. A re-run with the same data adds nothing (the model version is a hash of data and settings)."""
    if round_name is None and not dry_run:
        raise LabelingError("--round is needed to push predictions (without it, use --dry-run to measure the model)")
    if round_name is None and not from_rounds:
        raise LabelingError("name the rounds to train on with --from (or a round with --round)")
    with Session(engine) as session:
        target = get_round(session, round_name) if round_name else None
        targets: set[int] = set()
        tasks: dict[int, list[tuple[int, int]]] = {}
        client: LabelStudioClient | None = None
        if target is not None:
            if not dry_run:
                check_round(target)
                assert connect is not None
                client = connect()  # before training: a missing key or a server down fails fast
            if target.source == "labelstudio":
                targets, tasks = _round_targets(session, target)
        training, excluded = _training(engine, session, target, from_rounds, targets)
    report = SuggestReport(round_name, training.from_rounds, seed, dry_run=dry_run, excluded_items=excluded)
    report.training_items, report.target_items = len(training.finals), len(targets)
    report.tasks_total = sum(len(t) for t in tasks.values())
    texts = texts_for(engine, [*training.finals, *targets])
    empty = [training.refs[i] for i in training.finals if not texts.get(i)]
    if empty:
        report.notes.append(
            f"{len(empty)} training item(s) have no text (e.g. {empty[0]}): mine them, or import the sheet's "
            "descriptions"
        )
    examples = {training.refs[i]: (texts.get(i, ""), codes) for i, codes in training.finals.items()}
    report.model_version = model_version(examples)
    spec = training.book.spec
    models: dict[str, Pipeline] = {}
    for dim in spec.dimensions:
        items = [i for i, codes in training.finals.items() if dim.key in codes and _applies(dim, codes)]
        x = [texts.get(i, "") for i in items]
        y = [training.finals[i][dim.key] for i in items]
        score = cross_validate(dim.key, x, y, seed)
        report.scores.append(score)
        if score.skipped is None:
            models[dim.key] = build_model(seed).fit(np.asarray(x, dtype=object), np.asarray(y))
    predicted = _predict(spec.dimensions, models, {i: texts.get(i, "") for i in sorted(targets)})
    for dim in spec.dimensions:
        report.predicted[dim.key] = sum(1 for codes in predicted.values() if dim.key in codes)
    if dry_run or not predicted:
        if not dry_run and targets:
            report.notes.append("no dimension could be trained: nothing pushed")
        return report
    assert target is not None and client is not None
    try:
        _push(engine, client, target, training.book, tasks, predicted, report)
    except LabelStudioError as exc:
        raise exc.with_context(
            "no prediction was stored; running it again sends only what did not reach Label Studio"
        ) from None
    return report


def _predict(
    dims: Sequence[DimensionSpec], models: dict[str, Pipeline], texts: dict[int, str]
) -> dict[int, dict[str, tuple[int, float]]]:
    """item → dimension → (top code, its probability), in codebook order so conditions see their parents."""
    out: dict[int, dict[str, tuple[int, float]]] = {i: {} for i in texts}
    if not texts:
        return out
    items = list(texts)
    x = np.asarray([texts[i] for i in items], dtype=object)
    for dim in dims:
        model = models.get(dim.key)
        if model is None:
            continue
        proba = model.predict_proba(x)
        classes = model.classes_
        for row, item in enumerate(items):
            codes = {k: c for k, (c, _) in out[item].items()}
            if dim.required_when and not dim.applies(codes):
                continue
            best = int(np.argmax(proba[row]))
            out[item][dim.key] = (int(classes[best]), float(proba[row][best]))
    return {i: codes for i, codes in out.items() if codes}


def prediction_result(spec_dims: Sequence[DimensionSpec], codes: dict[str, tuple[int, float]]) -> list[dict[str, Any]]:
    """The Label Studio result of one prediction: one choice per predicted dimension, each with its score."""
    out = []
    for dim in spec_dims:
        if dim.key not in codes:
            continue
        code, score = codes[dim.key]
        out.append(
            {
                "from_name": dim.key,
                "to_name": OBJECT,
                "type": "choices",
                "value": {"choices": [choice_value(code, dim.codes[code].label)]},
                "score": round(score, 4),
            }
        )
    return out


def _push(
    engine: Engine,
    client: LabelStudioClient,
    rnd: LabelRound,
    book: LoadedCodebook,
    tasks: dict[int, list[tuple[int, int]]],
    predicted: dict[int, dict[str, tuple[int, float]]],
    report: SuggestReport,
) -> None:
    """Send each project's tasks that lack this model version their prediction (one request per project), show
    predictions with this version in the project, then store the predictions: a failure stores nothing, and the
    retry sends only what did not arrive (tasks carrying the version already are skipped)."""
    start = client.request_count
    version = report.model_version
    params = {"round": rnd.name, "from": report.from_rounds, "seed": report.seed, "model_version": version}
    with recorded_run(engine, "label-suggest", params) as log:
        for project, pairs in tasks.items():
            have = {t.id for t in client.tasks(project).tasks if any(p.model_version == version for p in t.predictions)}
            todo = []
            for task, item in pairs:
                codes = predicted.get(item)
                if not codes:
                    continue
                if task in have:
                    report.tasks_had_version += 1
                    continue
                todo.append(
                    {
                        "task": task,
                        "result": prediction_result(book.spec.dimensions, codes),
                        "score": round(min(s for _, s in codes.values()), 4),
                        "model_version": version,
                    }
                )
            if todo:
                client.import_predictions(project, todo)
                report.tasks_pushed += len(todo)
            client.update_project(project, {"show_collab_predictions": True, "model_version": version})
        log.add("tasks_pushed", report.tasks_pushed)
        with session_scope(engine) as session:
            report.stored = store_predictions(session, rnd.id or 0, book, version, predicted)
        log.add("predictions_new", report.stored.get("new", 0))
    report.requests = client.request_count - start


def store_predictions(
    session: Session,
    round_id: int,
    book: LoadedCodebook,
    version: str,
    predicted: dict[int, dict[str, tuple[int, float]]],
) -> dict[str, int]:
    """Upsert one row per item × dimension of this model version; returns new / changed / unchanged counts."""
    existing = {
        (p.item_id, p.dimension_id): p
        for p in session.exec(
            select(Prediction).where(Prediction.round_id == round_id, Prediction.model_version == version)
        ).all()
    }
    counts = {"new": 0, "changed": 0, "unchanged": 0}
    known_items = set(session.exec(select(LabelItem.id).where(col(LabelItem.id).in_(list(predicted)))).all())
    for item, codes in predicted.items():
        if item not in known_items:
            continue
        for key, (code, score) in codes.items():
            dim_id, code_id = book.dimension_ids[key], book.code_ids[(key, code)]
            row = existing.get((item, dim_id))
            if row is None:
                session.add(
                    Prediction(
                        round_id=round_id,
                        item_id=item,
                        dimension_id=dim_id,
                        code_id=code_id,
                        score=score,
                        model_version=version,
                    )
                )
                counts["new"] += 1
            elif row.code_id != code_id or abs(row.score - score) > 1e-9:
                row.code_id, row.score = code_id, score
                session.add(row)
                counts["changed"] += 1
            else:
                counts["unchanged"] += 1
    session.flush()
    return counts


# --- the model against the coders ---------------------------------------------------------------------------------


def model_agreement(
    engine: Engine,
    round_name: str,
    version: str | None = None,
    dimension: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[str, pd.DataFrame]:
    """The model as a separate rater: per dimension, its agreement (percent, Cohen's κ with a seeded bootstrap
    95% interval) with each coder of the round and with the round's final labels, on the items both coded. The
    newest model version of the round unless `version`; predictions never enter the coders' agreement."""
    from db.queries.labeling import predictions, ratings
    from labeling.agreement import agreement_for

    f = LabelFilter(rounds=(round_name,), dimensions=(dimension,) if dimension else ())
    preds = predictions(engine, f, version)
    if preds.empty:
        raise LabelingError(
            f"no predictions in round {round_name!r}"
            + (f" of model version {version!r}" if version else "")
            + ": run `interop label suggest` first"
        )
    if version is None:
        version = str(preds.sort_values(["created_at", "model_version"]).iloc[-1]["model_version"])
        preds = preds[preds["model_version"] == version]
    coded = ratings(engine, f)[["dimension", "item_id", "coder", "code"]]
    finals = final_labels(engine, f)
    if not finals.empty:
        coded = pd.concat(
            [coded, finals[["dimension", "item_id", "code"]].assign(coder="final label")], ignore_index=True
        )
    rows: list[dict[str, Any]] = []
    order = preds.drop_duplicates("dimension").sort_values("dimension_position")["dimension"]
    for dim in order:
        model = preds[preds["dimension"] == dim].set_index("item_id")["code"].astype(float)
        mine = coded[coded["dimension"] == dim]
        for rater in sorted(mine["coder"].unique(), key=lambda c: (c == "final label", c)):
            theirs = mine[mine["coder"] == rater].set_index("item_id")["code"].astype(float)
            both = model.index.intersection(theirs.index)
            if len(both) == 0:
                continue
            matrix = np.column_stack([model.loc[both].to_numpy(), theirs.loc[both].to_numpy()])
            res = agreement_for(matrix, ["model", str(rater)], round_name, str(dim), n_boot=n_boot, seed=seed)
            pair = res.pairs[0]
            rows.append(
                {
                    "round": round_name,
                    "dimension": dim,
                    "rater": rater,
                    "model_version": version,
                    "items": pair["items"],
                    "percent_agreement": pair["percent_agreement"],
                    "cohen_kappa": pair["cohen_kappa"],
                    "cohen_kappa_low": pair["cohen_kappa_ci"][0],
                    "cohen_kappa_high": pair["cohen_kappa_ci"][1],
                    "reading": pair["reading"],
                }
            )
    columns = ["round", "dimension", "rater", "model_version", "items", "percent_agreement", "cohen_kappa"]
    return version, pd.DataFrame(rows, columns=[*columns, "cohen_kappa_low", "cohen_kappa_high", "reading"])
