"""`interop label`: codebooks, the study's coding sheets, Label Studio rounds, agreement, adjudication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, engine, err_console
from cli.output import (
    Format,
    emit,
    format_option,
    frame_table,
    json_ready,
    new_table,
    out_option,
    records,
    split_list,
)
from db.errors import InteropError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Code items (GitHub issues, …) with a codebook; measure agreement; adjudicate.", no_args_is_help=True
)
codebook_app = typer.Typer(help="Load and list versioned codebooks.", no_args_is_help=True)
app.add_typer(codebook_app, name="codebook")


SOURCES = {"sheet": "coding sheet", "labelstudio": "Label Studio"}


def _when(value: object) -> str:
    """A stored time in UTC to the minute (times are stored in UTC; naive ones are UTC already)."""
    import pandas as pd

    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp).strftime("%Y-%m-%d %H:%M")


@codebook_app.command("load")
def codebook_load(file: Path = typer.Argument(..., help="Codebook YAML file.")) -> None:
    """Store FILE as a codebook version (an identical file is a no-op; a changed one is the next version)."""
    from db.engine import session_scope
    from labeling.codebook import read_codebook
    from labeling.store import codebook_version, store_codebook

    spec = read_codebook(file)
    with session_scope(engine()) as session:
        book = store_codebook(session, spec, str(file))
        current = codebook_version(session, book.name).version
    codes = sum(len(d.codes) for d in spec.dimensions)
    if not book.created:  # a no-op: nothing stored, so nothing to warn about either
        state = "it stays the current version" if current == book.version else f"version {current} stays current"
        console.print(f"codebook {book.name!r} not loaded: identical to version {book.version}; {state}")
        return
    from rich.markup import escape

    for warning in spec.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(
        f"codebook {book.name!r} stored as version {book.version} (now current): "
        f"{len(spec.dimensions)} dimensions, {codes} codes"
    )


@codebook_app.command("list")
def codebook_list() -> None:
    """Show the loaded codebooks and their versions."""
    from db.queries.labeling import codebook_versions

    frame = codebook_versions(engine())
    if frame.empty:
        console.print("no codebook loaded")
        return
    newest = frame.groupby("codebook")["version"].transform("max")
    table = new_table("codebook", "version", "current", "declared", "loaded (UTC)", "source file", numeric=("version",))
    for row, last in zip(frame.itertuples(index=False), newest, strict=True):
        table.add_row(
            row.codebook,
            str(row.version),
            "yes" if row.version == last else "",
            "" if row.declared_version is None else str(row.declared_version),
            _when(row.loaded_at),
            row.source or "",
        )
    console.print(table)


@app.command("import-sheet")
def import_sheet(
    file: Path = typer.Argument(..., help="FailureAnalysis.xlsx, PilotStudy.xlsx or a workbook laid out like them."),
    sheet: list[str] = typer.Option(None, "--sheet", help="Only these sheets (repeated or comma-separated)."),
    round_name: str = typer.Option(None, "--round", help="Round name (when the sheets hold one round)."),
    codebook: str = typer.Option(None, "--codebook", help="Codebook name (default: the only one loaded)."),
    survey: str = typer.Option(
        None, "--survey", help="Thematic sheets (survey_analysis.xlsx): the imported survey their answers are from."
    ),
) -> None:
    """Import the study's coding: each group of sheets is one round with its coders (re-running changes nothing).

    A workbook of thematic coding (survey_analysis.xlsx: "Raw data", "Memos", "Themes") becomes one round whose
    items are the survey's free-text answers, matched by answer text; rows that match none are listed."""
    from labeling.importer import import_workbook
    from labeling.survey_items import is_theme_workbook

    if is_theme_workbook(file):
        _import_themes(file, survey, codebook, split_list(sheet) or None, round_name)
        return
    result = import_workbook(engine(), file, codebook, split_list(sheet) or None, round_name)
    for r in result.rounds:
        extra = f", cross-checked {r['cross_checked']} cells" if r["cross_checked"] else ""
        where = f"round {r['round']!r} ({', '.join(r['sheets'])})"
        rerun = not (r["new"] or r["changed"] or r["removed"] or r["finals_changed"])
        if rerun:  # a re-run: say so plainly
            console.print(
                f"{where}: nothing new: {r['items']} items already coded as in the sheet "
                f"({r['codings']} codings by {', '.join(r['coders'])}){extra}",
                markup=False,
            )
        else:
            console.print(
                f"{where}: {r['items']} items, coders {', '.join(r['coders'])}, "
                f"{r['codings']} codings ({r['new']} new, {r['changed']} changed, {r['unchanged']} unchanged, "
                f"{r['removed']} removed){extra}",
                markup=False,
            )
        for sheet, stats in r["sheet_stats"].items():
            if stats["cross_checked"]:
                console.print(
                    f"  {sheet}: {stats['rows']} rows read, {stats['cross_checked']} cells cross-checked", markup=False
                )
                continue
            stored = "already stored" if rerun else "stored"
            console.print(
                f"  {sheet}: {stats['rows']} rows read, {stats['codes']} codes {stored} "
                f"({', '.join(stats['dimensions'])})",
                markup=False,
            )
        if r["required_absent"]:
            console.print(
                f"  note: the codebook's required {', '.join(r['required_absent'])} is in none of these sheets; "
                f"the round codes {', '.join(r['dimensions'])}",
                markup=False,
            )
    for sheet in result.skipped:
        console.print(f"skipped sheet {sheet}: not a coding sheet", markup=False)


def _import_themes(
    file: Path, survey: str | None, codebook: str | None, sheets: list[str] | None, round_name: str | None
) -> None:
    """`import-sheet` of a thematic workbook: per sheet its question, matches, merged spellings, unmatched rows."""
    from db.queries.survey import SurveyFilter, list_surveys
    from labeling.store import LabelingError
    from labeling.survey_items import import_theme_workbook

    eng = engine()
    if survey is None:
        names = list_surveys(eng, SurveyFilter())["survey"].tolist()
        if len(names) != 1:
            raise LabelingError(
                f"{file.name} codes survey answers: name the survey with --survey "
                f"({', '.join(names) or 'none imported'})"
            )
        survey = str(names[0])
    result = import_theme_workbook(eng, file, survey, codebook, sheets, round_name)
    c, f = result.counts, result.finals
    console.print(
        f"round {result.round!r} (survey {survey!r}): {sum(len(m.matched) for m in result.sheets)} answers coded "
        f"({c['new']} new, {c['changed']} changed, {c['unchanged']} unchanged, {c['removed']} removed); final "
        f"themes {f['new']} new, {f['withdrawn']} withdrawn, {f['unchanged']} unchanged",
        markup=False,
    )
    for m in result.sheets:
        themes = f"themes in {m.dimension!r}" if m.dimension else "no theme dimension in the codebook"
        console.print(
            f"  {m.sheet}: question {m.qid or '?'}, {len(m.matched)} of {len(m.matched) + len(m.unmatched)} rows "
            f"matched ({m.answers} answers in the survey), {len(m.unmatched)} unmatched; {themes}",
            markup=False,
        )
        for (spelling, label), n in sorted(m.merged.items()):
            console.print(f"    merged {spelling!r} into {label!r} ({n} cells)", markup=False)
    unmatched = [(m, r) for m in result.sheets for r in m.unmatched]
    for m, r in unmatched:
        text = r.text if len(r.text) <= 80 else r.text[:77] + "..."
        err_console.print(
            f"unmatched: {file.name} sheet {m.sheet!r} row {r.row}: no answer to {m.qid or 'any question'} "
            f"reads {text!r}",
            markup=False,
            soft_wrap=True,
        )
    total = sum(len(m.matched) + len(m.unmatched) for m in result.sheets)
    console.print(
        f"summary: {total - len(unmatched)} of {total} rows matched an answer, {len(unmatched)} unmatched (not stored)",
        markup=False,
    )


def _check_choices(round_name: str | None, dimensions: dict[str, str | None]) -> list[str]:
    """An unknown round or dimension is one error line listing the valid choices (not an empty result);
    returns the valid dimensions."""
    from labeling.summary import dimension_keys

    keys = dimension_keys(engine(), round_name)
    where = f" in round {round_name!r}" if round_name else ""
    for option, value in dimensions.items():
        if value is not None and value not in keys:
            raise InteropError(
                f"unknown {option} {value!r}{where}: choose one of {', '.join(keys) or 'none (no codebook loaded)'}"
            )
    return keys


def _fmt(value: object) -> str:
    import math

    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


@app.command()
def agreement(
    round_name: str = typer.Option(None, "--round", help="Only this round (default: every round with ≥ 2 coders)."),
    dimension: str = typer.Option(None, "--dimension", help="Only this dimension."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap (same seed, same intervals)."),
    confusion: bool = typer.Option(False, "--confusion", help="Also print each coder pair's confusion matrix."),
    show_disagreements: bool = typer.Option(False, "--disagreements", help="Also list the items coders disagree on."),
    model: bool = typer.Option(
        False, "--model", help="Instead: the model's predictions (`label suggest`) against each coder and the finals."
    ),
    model_version: str = typer.Option(None, "--model-version", help="With --model: this version (default: newest)."),
    against: str = typer.Option(
        None,
        "--against",
        help="Instead: each coder of --round against this reference round's final codes (e.g. failureanalysis).",
    ),
) -> None:
    """Percent agreement, Cohen's κ per pair, Fleiss' κ, Krippendorff's α, Gwet's AC1 with 95% bootstrap CIs.

    Model predictions are never a coder here; --model reports the model against the coders separately."""
    if against is not None:
        _agreement_against(round_name, against, dimension, fmt, out, bootstrap, seed)
        return

    from db.queries.labeling import LabelFilter
    from db.queries.labeling import ratings as load_ratings
    from labeling.agreement import (
        agreement_report,
        confusion_matrix,
        disagreements,
        krippendorff_reading,
        landis_koch,
        summary_frame,
    )
    from labeling.store import LabelingError
    from labeling.summary import multi_dimensions, round_categories

    _check_choices(round_name, {"--dimension": dimension})
    if model or model_version:
        if not round_name:
            raise LabelingError("--model needs --round")
        _model_agreement(round_name, model_version, dimension, bootstrap, seed, fmt, out)
        return
    eng = engine()
    frame = load_ratings(
        eng, LabelFilter(rounds=(round_name,) if round_name else (), dimensions=(dimension,) if dimension else ())
    )
    if frame.empty:
        raise LabelingError(
            "no valid codings"
            + (f" in round {round_name!r}" if round_name else "")
            + (f" for dimension {dimension!r}" if dimension else "")
        )
    from db.queries.labeling import coded_items

    narrowed = LabelFilter(rounds=(round_name,) if round_name else ())
    multi = {(r, d) for r, d in multi_dimensions(eng) if dimension in (None, d)}
    coded = coded_items(eng, narrowed) if multi else None
    results = agreement_report(frame, round_categories(eng), bootstrap, seed, multi, coded)
    if not results:
        raise LabelingError("agreement needs at least two coders per round and dimension")
    rows = [r.as_row() for r in results]
    pairs = [p for r in results for p in r.pairs]
    themes = [t for r in results for t in r.themes]
    if fmt == "json":
        document = {"summary": json_ready(rows), "pairs": json_ready(pairs), "bootstrap": bootstrap, "seed": seed}
        if themes:
            document["themes"] = json_ready(themes)
        if show_disagreements:
            document["disagreements"] = json.loads(disagreements(frame).to_json(orient="records"))
        emit(fmt, out, summary_frame(results), document=document)
        return
    if fmt == "csv":
        emit(fmt, out, summary_frame(results))
        return

    def render(to: Console) -> None:
        to.print(f"Agreement with 95% bootstrap intervals ({bootstrap} resamples over items, seed {seed})")
        for res, r in zip(results, rows, strict=True):
            table = new_table(
                "statistic",
                "value",
                "95% CI",
                "reading",
                numeric=("value",),
                title=f"{r['round']} / {r['dimension']}: coders {', '.join(res.coders)}; {r['items']} items "
                f"({r['items_complete']} coded by all)",
            )
            if res.distance != "nominal":
                table.add_row("exact-set agreement", _fmt(r["percent_agreement"]), _fmt(r["percent_agreement_ci"]), "")
                alpha = r["krippendorff_alpha"]
                table.add_row(
                    "Krippendorff's α (MASI)",
                    _fmt(alpha),
                    _fmt(r["krippendorff_alpha_ci"]),
                    f"{krippendorff_reading(alpha)} (Krippendorff)",
                )
                for t in res.themes:
                    name = "Cohen's κ" if t["statistic"] == "cohen_kappa" else "Fleiss' κ"
                    table.add_row(
                        f"{name}, theme {t['theme']} ({t['items_present']} items)",
                        _fmt(t["kappa"]),
                        _fmt(t["kappa_ci"]),
                        f"{t['reading']} (Landis–Koch)",
                    )
                to.print(table)
                continue
            table.add_row("percent agreement", _fmt(r["percent_agreement"]), _fmt(r["percent_agreement_ci"]), "")
            for p in res.pairs:
                table.add_row(
                    f"Cohen's κ {p['coder_a']} × {p['coder_b']}",
                    _fmt(p["cohen_kappa"]),
                    _fmt(p["cohen_kappa_ci"]),
                    f"{p['reading']} (Landis–Koch)",
                )
            for key, name, scale, read in (
                ("fleiss_kappa", "Fleiss' κ", "Landis–Koch", landis_koch),
                ("krippendorff_alpha", "Krippendorff's α", "Krippendorff", krippendorff_reading),
                ("gwet_ac1", "Gwet's AC1", "Landis–Koch", landis_koch),
            ):
                table.add_row(name, _fmt(r[key]), _fmt(r[f"{key}_ci"]), f"{read(r[key])} ({scale})")
            to.print(table)
        to.print(
            "readings: κ and AC1 on the Landis–Koch (1977) scale; α on Krippendorff's (2004): ≥ 0.800 reliable, "
            "≥ 0.667 tentative conclusions only, below that unreliable"
        )
        for r in results:
            for w in r.warnings:
                to.print(f"[yellow]warning[/] {r.round}/{r.dimension}: {w}")
        if confusion:
            for r in results:
                for p in r.pairs:
                    to.print(f"\n[bold]{r.round} / {r.dimension}: {p['coder_a']} (rows) × {p['coder_b']} (columns)")
                    to.print(confusion_matrix(frame, r.round, r.dimension, p["coder_a"], p["coder_b"]).to_string())
        if show_disagreements:
            table_d = disagreements(frame)
            to.print(f"\n[bold]{len(table_d)} disagreements")
            if not table_d.empty:
                to.print(table_d.drop(columns=["item_id"]).to_string(index=False))

    emit(fmt, out, summary_frame(results), render=render)


def _model_agreement(
    round_name: str,
    version: str | None,
    dimension: str | None,
    bootstrap: int,
    seed: int,
    fmt: Format,
    out: Path | None,
) -> None:
    from labeling.suggest import model_agreement

    version, frame = model_agreement(engine(), round_name, version, dimension, n_boot=bootstrap, seed=seed)
    if frame.empty:
        raise InteropError(f"no item of round {round_name!r} has both a prediction of {version} and a valid code")

    def render(to: Console) -> None:
        to.print(
            f"Model {version} against the coders of {round_name} (not a coder: never in the agreement above); "
            f"Cohen's κ with 95% bootstrap intervals ({bootstrap} resamples, seed {seed})"
        )
        table = new_table(
            "dimension", "rater", "items", "agreement", "Cohen's κ", "95% CI", "reading", numeric=("items",)
        )
        for r in frame.itertuples(index=False):
            table.add_row(
                r.dimension,
                r.rater,
                str(r.items),
                _fmt(r.percent_agreement),
                _fmt(r.cohen_kappa),
                _fmt((r.cohen_kappa_low, r.cohen_kappa_high)),
                f"{r.reading} (Landis–Koch)",
            )
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command()
def suggest(
    round_name: str = typer.Option(
        None, "--round", help="Round whose uncoded tasks get the predictions (pushed with --predictions)."
    ),
    from_rounds: list[str] = typer.Option(
        None, "--from", help="Rounds whose final labels train the model (default: all of the round's codebook)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the cross-validation folds (same seed, same figures)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Train and cross-validate only: push and store nothing."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Suggest codes: a TF-IDF + logistic-regression classifier per dimension trained on final labels, its 5-fold
    cross-validated accuracy, macro-F1 and Cohen's κ against a majority-class baseline, and its top code and score
    per dimension pushed as Label Studio predictions (never codings) to the round's tasks not yet decided.

    Blind rounds (pushed without --predictions) are refused."""
    from labeling.client import connect
    from labeling.suggest import suggest as do_suggest

    report = do_suggest(engine(), connect, round_name, split_list(from_rounds), seed, dry_run)
    import pandas as pd

    frame = pd.DataFrame([s.as_row() for s in report.scores])
    document = {
        "round": report.round,
        "from": report.from_rounds,
        "seed": seed,
        "folds": 5,
        "model_version": report.model_version,
        "training_items": report.training_items,
        "excluded_items": report.excluded_items,
        "target_items": report.target_items,
        "predicted": report.predicted,
        "tasks_pushed": report.tasks_pushed,
        "tasks_had_version": report.tasks_had_version,
        "stored": report.stored,
        "dry_run": dry_run,
        "notes": report.notes,
        "dimensions": records(frame),
    }

    def render(to: Console) -> None:
        to.print(
            f"model {report.model_version}: trained on final labels of {', '.join(report.from_rounds)} "
            f"({report.training_items} items"
            + (f"; {report.excluded_items} items of round {report.round} left out" if report.excluded_items else "")
            + f"); stratified 5-fold cross-validation, seed {seed}, baseline = majority code",
            markup=False,
        )
        table = new_table(
            "dimension",
            "items",
            "codes",
            "accuracy",
            "baseline",
            "macro-F1",
            "baseline",
            "Cohen's κ",
            "baseline",
            "beats baseline",
            numeric=("items", "codes"),
        )
        for sc in report.scores:
            if sc.skipped:
                table.add_row(sc.dimension, str(sc.items), str(sc.codes), "–", "–", "–", "–", "–", "–", "skipped")
                continue
            table.add_row(
                sc.dimension,
                str(sc.items),
                str(sc.codes),
                _fmt(sc.accuracy),
                _fmt(sc.baseline_accuracy),
                _fmt(sc.macro_f1),
                _fmt(sc.baseline_macro_f1),
                _fmt(sc.kappa),
                _fmt(sc.baseline_kappa),
                "yes" if sc.beats_baseline else "no",
            )
        to.print(table)
        for sc in report.scores:
            if sc.skipped:
                to.print(f"skipped {sc.dimension}: {sc.skipped}", markup=False)
            elif sc.rare:
                to.print(
                    f"note {sc.dimension}: codes with fewer than 5 items ({sc.as_row()['rare_codes']}) are "
                    "kept in the evaluation but rarely predicted",
                    markup=False,
                )
        for note in report.notes:
            to.print(f"note: {note}", markup=False)
        if report.round is None:
            return
        made = ", ".join(f"{k} {n}" for k, n in report.predicted.items() if n)
        if dry_run:
            to.print(
                f"dry run: {report.target_items} undecided items of round {report.round} would get predictions "
                f"({made or 'none'}); nothing pushed or stored",
                markup=False,
            )
        else:
            st = report.stored
            to.print(
                f"round {report.round}: {report.tasks_pushed} of {report.tasks_total} tasks got predictions "
                f"({report.tasks_had_version} had this version already); {report.target_items} undecided items "
                f"({made or 'none'}); stored {st.get('new', 0)} new, {st.get('changed', 0)} changed, "
                f"{st.get('unchanged', 0)} unchanged; {report.requests} HTTP requests",
                markup=False,
            )

    emit(fmt, out, frame, document=document, render=render)


def _agreement_against(
    round_name: str | None,
    reference: str,
    dimension: str | None,
    fmt: Format,
    out: Path | None,
    bootstrap: int,
    seed: int,
) -> None:
    """`label agreement --round R --against REF`: each coder of R × REF's final codes, per dimension."""
    import math

    import pandas as pd

    from db.queries.labeling import LabelFilter, final_labels
    from db.queries.labeling import ratings as load_ratings
    from labeling.agreement import against_reference, reference_name
    from labeling.store import LabelingError
    from labeling.summary import round_categories

    if round_name is None:
        raise InteropError("--against needs --round: the round whose coders are compared with the reference")
    if reference == round_name:
        raise InteropError(f"--against {reference!r} is the round itself; name another round as the reference")
    _check_choices(round_name, {"--dimension": dimension})
    _check_choices(reference, {})
    eng = engine()
    dims = (dimension,) if dimension else ()
    frame = load_ratings(eng, LabelFilter(rounds=(round_name,), dimensions=dims))
    if frame.empty:
        raise LabelingError(f"no valid codings in round {round_name!r}" + (f" for {dimension!r}" if dimension else ""))
    finals = final_labels(eng, LabelFilter(rounds=(reference,), dimensions=dims))
    if finals.empty:
        raise LabelingError(
            f"round {reference!r} has no final codes to compare with (`interop label finals --round {reference}`)"
        )
    results = against_reference(frame, finals, reference, round_categories(eng), n_boot=bootstrap, seed=seed)
    if not results:
        raise LabelingError(f"no item coded in round {round_name!r} has a final code in round {reference!r}")
    ref = reference_name(reference)
    rows = [
        {
            "round": r.round,
            "dimension": r.dimension,
            "coder": r.coders[0],
            "reference": reference,
            "items": r.items,
            "percent_agreement": r.percent_agreement,
            "percent_agreement_ci": r.ci.get("percent_agreement", (math.nan, math.nan)),
            "cohen_kappa": r.pairs[0]["cohen_kappa"],
            "cohen_kappa_ci": r.pairs[0]["cohen_kappa_ci"],
            "reading": r.pairs[0]["reading"],
            "warnings": [w.replace(ref, reference) for w in r.warnings],
        }
        for r in results
    ]

    flat = pd.DataFrame(
        [
            {
                **{k: v for k, v in row.items() if not k.endswith("_ci") and k != "warnings"},
                "percent_agreement_ci_low": row["percent_agreement_ci"][0],
                "percent_agreement_ci_high": row["percent_agreement_ci"][1],
                "cohen_kappa_ci_low": row["cohen_kappa_ci"][0],
                "cohen_kappa_ci_high": row["cohen_kappa_ci"][1],
                "warnings": " | ".join(row["warnings"]),
            }
            for row in rows
        ]
    )
    if fmt == "json":
        document = {"summary": json_ready(rows), "against": reference, "bootstrap": bootstrap, "seed": seed}
        emit(fmt, out, flat, document=document)
        return

    def render(to: Console) -> None:
        to.print(
            f"Agreement of the coders of round {round_name!r} with the final codes of round {reference!r}, "
            f"95% bootstrap intervals ({bootstrap} resamples over items, seed {seed})",
            markup=False,
        )
        table = new_table(
            "dimension",
            "coder",
            "items",
            "agreement",
            "95% CI",
            "Cohen's κ",
            "95% CI ",
            "reading (Landis–Koch)",
            numeric=("items", "agreement", "Cohen's κ"),
        )
        for row in rows:
            table.add_row(
                str(row["dimension"]),
                str(row["coder"]),
                str(row["items"]),
                _fmt(row["percent_agreement"]),
                _fmt(row["percent_agreement_ci"]),
                _fmt(row["cohen_kappa"]),
                _fmt(row["cohen_kappa_ci"]),
                str(row["reading"]),
            )
        to.print(table)
        for row in rows:
            for w in row["warnings"]:
                to.print(f"[yellow]warning[/] {row['dimension']}/{row['coder']}: {w}")

    emit(fmt, out, flat, render=render)


@app.command()
def push(
    sample: str = typer.Option(None, "--sample", help="Name of the issue sample to code."),
    survey: str = typer.Option(None, "--survey", help="Or a survey: code the free-text answers of --question."),
    question: str = typer.Option(None, "--question", help="The free-text question of --survey, e.g. Q66."),
    round_name: str = typer.Option(..., "--round", help="Round name, e.g. pilot or main."),
    coders: list[str] = typer.Option(
        ..., "--coders", help="Coders, repeated or comma-separated: alice,bob (or alice=alice@lab.org)."
    ),
    overlap: float = typer.Option(1.0, "--overlap", help="Share of items coded by several coders (1.0 in a pilot)."),
    per_item: int = typer.Option(None, "--per-item", help="Coders per overlapping item (default: all)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the assignment (default: the sample's seed)."),
    codebook: str = typer.Option(None, "--codebook", help="Codebook name (default: the only one loaded)."),
    predictions: bool = typer.Option(
        None,
        "--predictions/--blind",
        help="Whether coders see model suggestions (`label suggest`); a new round is blind unless --predictions, "
        "and a round keeps what it was pushed with.",
    ),
) -> None:
    """Create/update one Label Studio project per coder (blind coding) and import the sample's issues, or the
    survey question's free-text answers (the coder sees the question and the answer), as tasks.

    The round is recorded only when the whole push succeeded; after a failure, pushing again (with the same or
    other coders) reuses what reached Label Studio and removes projects of coders no longer named."""
    from labeling.client import connect
    from labeling.store import LabelingError
    from labeling.sync import push as do_push

    if (sample is None) == (survey is None) or (survey is None) != (question is None):
        raise LabelingError("push either an issue sample (--sample) or a survey question (--survey and --question)")
    client = connect()
    report = do_push(
        engine(),
        client,
        sample,
        round_name,
        ",".join(split_list(coders)),
        overlap,
        per_item,
        seed,
        codebook,
        predictions,
        survey=survey,
        question=question,
    )
    console.print(
        f"round {report.round!r}: {report.items} items, {report.overlap_items} coded by several coders; "
        f"{report.created_projects} projects created, {report.updated_configs} updated, "
        f"{report.adopted} tasks adopted; {report.requests} HTTP requests"
    )
    for user in report.created_users:
        err_console.print(
            f"[yellow]note:[/] created Label Studio user {user} without a password: on the server, "
            "`label-studio reset_password --username EMAIL` gives it one (or link existing accounts "
            "with --coders NAME=EMAIL)"
        )
    for name, project in report.projects.items():
        console.print(
            f"  {name}: project {project} at {client.url}/projects/{project}: "
            f"{report.tasks_new.get(name, 0)} new tasks, {report.tasks_total.get(name, 0)} in all"
        )
    if report.removed_projects:
        ids = ", ".join(str(i) for i in report.removed_projects)
        console.print(f"  removed Label Studio projects {ids}: an earlier failed push of this round made them")
    for title in report.kept_projects:
        err_console.print(
            f"[yellow]note:[/] kept {title}: an earlier failed push of this round made it for a coder no longer "
            "named, and someone annotated there; delete it in Label Studio once its work is saved elsewhere",
            soft_wrap=True,
        )


@app.command()
def pull(
    round_name: str = typer.Option(None, "--round", help="Only this round (default: every Label Studio round)."),
    full: bool = typer.Option(False, "--full", help="Re-read every task, not only those changed since last pull."),
) -> None:
    """Fetch new and changed annotations, check each against the codebook, and store them (re-pull changes nothing).

    Any answer of an unexpected shape stops the pull with one error: nothing is stored and no cursor moves."""
    from labeling.client import connect
    from labeling.pull import pull as do_pull

    client = connect()
    report = do_pull(engine(), client, round_name, full)
    c = report.counts
    console.print(
        f"pulled {', '.join(report.rounds)}: {c['tasks_read']} tasks read, {c['new']} new, "
        f"{c['changed']} changed, {c['unchanged']} unchanged, {c['removed']} removed, "
        f"{c['invalid']} invalid, {c['skipped']} skipped; {report.requests} HTTP requests"
    )
    if c["superseded"]:
        console.print(f"  {c['superseded']} older annotations by the same coder on a task were ignored (newest wins)")
    if c["tasks_unknown"]:
        console.print(f"  {c['tasks_unknown']} tasks not created by `interop label push` were ignored")
    for bad in report.invalid:
        err_console.print(
            f"[yellow]invalid[/] {bad['round']} {bad['item']} by {bad['coder']} (task "
            f"{bad['ls_task_id']}, annotation {bad['ls_annotation_id']}): {'; '.join(bad['problems'])}"
        )


@app.command()
def adjudicate(
    round_name: str = typer.Option(..., "--round", help="The round to settle."),
    prefer_coder: str = typer.Option(None, "--prefer-coder", help="Rule: on disagreement take this coder's code."),
    majority: bool = typer.Option(False, "--majority", help="Rule: on disagreement take a strict majority."),
    review: bool = typer.Option(
        False,
        "--review",
        help="Send open disagreements to a Label Studio review project "
        "and take reviewers' decisions made there so far.",
    ),
    show_open: bool = typer.Option(False, "--show-open", help="List the items still undecided."),
) -> None:
    """Final labels: agreed items automatically; disagreements by a named rule or by review in Label Studio."""
    from labeling.adjudicate import adjudicate as do_adjudicate
    from labeling.client import connect

    if prefer_coder and majority:
        raise InteropError("choose one rule: --prefer-coder or --majority")
    client = connect() if review else None
    report = do_adjudicate(engine(), round_name, prefer_coder, majority, client)
    c = report.counts
    console.print(
        f"round {report.round!r}: final labels {c['final_new']} new, {c['final_changed']} changed, "
        f"{c['final_withdrawn']} withdrawn; decided by agreement {c['agreement']}, single coder {c['single-coder']}, "
        f"rule {c['rule']}, review {c['review']}, kept {c['sheet']} from the sheet; {c['items_open']} items open, "
        f"{c['items_waiting']} waiting for a valid coding"
        + (f", {c['sent_to_review']} sent to review project {report.review_project}" if review else "")
    )
    for bad in report.invalid_reviews:
        err_console.print(
            f"[yellow]invalid review[/] {bad['item']} by {bad['reviewer']} (task {bad['ls_task_id']}, annotation "
            f"{bad['ls_annotation_id']}): {'; '.join(bad['problems'])}; the item keeps its earlier state",
            soft_wrap=True,
        )
    if show_open:
        for item in report.open_items:
            if item.get("waiting_for"):
                console.print(f"  waiting {item['item']}: no valid coding yet from {', '.join(item['waiting_for'])}")
            else:
                console.print(f"  open {item['item']}: {', '.join(item['dimensions'])}  {item['coders']}")


def _text(value: object) -> str:
    """A cell: missing values (None, NaN) are blank."""
    import pandas as pd

    return "" if value is None or (not isinstance(value, dict | list) and pd.isna(value)) else str(value)


def _code(code: object, label: object) -> str:
    return f"{code:.0f} {label}" if _text(code) else ""


@app.command()
def finals(
    round_name: str = typer.Option(..., "--round", help="The round whose final labels to show."),
    item: str = typer.Option(None, "--item", help="Only this item, e.g. pytorch/pytorch#49403."),
    history: bool = typer.Option(False, "--history", help="Every decision instead: before, after, who, when, why."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Final labels with who decided, the reviewer's note and the codings weighed (or their whole history)."""
    from db.queries.labeling import LabelFilter, adjudication_history, final_labels
    from labeling.finals import evidence_text

    _check_choices(round_name, {})
    eng = engine()
    if history:
        frame = adjudication_history(eng, LabelFilter(rounds=(round_name,), item=item))
    else:
        frame = final_labels(eng, LabelFilter(rounds=(round_name,), item=item))
    if frame.empty:
        raise InteropError(
            f"no {'decisions' if history else 'final labels'} in round {round_name!r}"
            + (f" for {item}" if item else "")
        )
    if fmt in ("json", "csv"):
        emit(fmt, out, frame.drop(columns=[c for c in ("item_id", "kind") if c in frame]))
        return
    if history:
        table = new_table("item", "dimension", "action", "from", "to", "decided by", "at (UTC)", "note", "evidence")
        for row in frame.itertuples(index=False):
            table.add_row(
                row.item,
                row.dimension,
                row.action,
                _code(row.previous_code, row.previous_label),
                _code(row.code, row.label),
                _text(row.decided_by) or _text((row.detail or {}).get("reason")),
                _when(row.decided_at),
                _text(row.note),
                evidence_text(row.detail),
            )
    else:
        table = new_table("item", "dimension", "code", "decided by", "at (UTC)", "note", "evidence")
        for row in frame.itertuples(index=False):
            table.add_row(
                row.item,
                row.dimension,
                _code(row.code, row.label),
                row.decided_by,
                _when(row.decided_at),
                _text(row.note),
                evidence_text(row.detail),
            )
    emit(fmt, out, frame, render=lambda to: to.print(table))


@app.command()
def rounds(fmt: Format = format_option(), out: Path | None = out_option()) -> None:
    """List the rounds: source, codebook version and number of codings."""
    from db.queries.labeling import rounds as load_rounds

    frame = load_rounds(engine())
    if frame.empty and fmt == "table" and out is None:
        console.print("no rounds yet")
        return

    def render(to: Console) -> None:
        table = new_table(
            "round", "coded in", "codebook", "version", "codings", "created (UTC)", numeric=("version", "codings")
        )
        for row in frame.itertuples(index=False):
            table.add_row(
                row.round,
                SOURCES.get(row.source, row.source),
                row.codebook,
                str(row.codebook_version),
                str(row.codings),
                _when(row.created_at),
            )
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command()
def themes(
    round_name: str = typer.Option(None, "--round", help="Only this round."),
    dimension: str = typer.Option(None, "--dimension", help="Only this multi-label dimension."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """New themes coders proposed in Label Studio (open coding), for the next codebook version: each with how
    many codings proposed it, by whom and for which items."""
    from db.queries.labeling import LabelFilter, proposed_codes

    _check_choices(round_name, {"--dimension": dimension})
    frame = proposed_codes(
        engine(), LabelFilter(rounds=(round_name,) if round_name else (), dimensions=(dimension,) if dimension else ())
    )

    def render(to: Console) -> None:
        if frame.empty:
            to.print("no new themes proposed" + (f" in round {round_name!r}" if round_name else ""))
            return
        table = new_table("round", "dimension", "proposed theme", "codings", "coders", "items", numeric=("codings",))
        for r in frame.itertuples(index=False):
            table.add_row(r.round, r.dimension, r.proposal, str(r.codings), ", ".join(r.coders), ", ".join(r.items))
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command()
def taxonomy(
    dimension: str = typer.Option("cause", "--dimension", help="Dimension to count per converter repository."),
    round_name: str = typer.Option(None, "--round", help="Only this round (default: newest final label per item)."),
    crosstab_with: str = typer.Option(None, "--crosstab", help="Also cross-tabulate DIMENSION × this dimension."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Distribution of final labels per converter (and a cross-tab, e.g. symptom × cause).

    CSV holds the distribution, or with --crosstab the cross-tab; JSON holds both."""
    from db.queries.labeling import LabelFilter, crosstab, taxonomy_distribution

    keys = _check_choices(round_name, {"--dimension": dimension, "--crosstab": crosstab_with})
    if crosstab_with == dimension:
        others = ", ".join(k for k in keys if k != dimension)
        raise InteropError(f"--crosstab {crosstab_with!r} is the --dimension itself: choose one of {others}")
    eng = engine()
    dist = taxonomy_distribution(eng, LabelFilter(rounds=(round_name,) if round_name else ()), dimension)
    if dist.empty:
        raise InteropError(
            f"no final labels for dimension {dimension!r}"
            + (f" in round {round_name!r}" if round_name else "")
            + ": run `interop label adjudicate` first"
        )
    table = (
        crosstab(eng, LabelFilter(rounds=(round_name,) if round_name else ()), dimension, crosstab_with).reset_index()
        if crosstab_with
        else None
    )
    document = {"distribution": records(dist), "crosstab": records(table)} if table is not None else None

    def render(to: Console) -> None:
        to.print(frame_table(dist.assign(share=dist["share"].map(lambda v: f"{v:.1%}"))))
        if table is not None:
            to.print(frame_table(table, title=f"{dimension} × {crosstab_with}"))

    emit(fmt, out, table if table is not None and fmt == "csv" else dist, document=document, render=render)
