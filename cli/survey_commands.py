"""`interop survey`: import Qualtrics exports, exclude respondents by rule, and look at counts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from cli.common import console, engine, err_console
from cli.output import Format, emit, format_option, new_table, out_option
from db.errors import InteropError

if TYPE_CHECKING:
    from rich.console import Console

    from miners.survey.workflow import ImportOutcome

app = typer.Typer(
    help="Qualtrics survey responses: import, exclusion rules, questions and counts.", no_args_is_help=True
)

SHOWN_NOTICES = 10


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Qualtrics export (.xlsx, .csv or .tsv), any layout and language."),
    survey: str = typer.Option(..., "--survey", "-s", help="Name to store the survey under (re-imports add to it)."),
    definition: Path | None = typer.Option(
        None,
        "--definition",
        "-d",
        help="The survey's definition (.qsf from Tools > Import/Export > Export Survey): exact types, choices, "
        "recodes. Stored with the survey (versioned); later imports reuse it.",
    ),
    sheet: str | None = typer.Option(None, help="Worksheet of an .xlsx export (default: the first)."),
    questions: Path | None = typer.Option(
        None, "--questions", "-q", help="Overrides file (YAML/JSON) without a definition: kinds, known choices, …"
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Exclusion rule, repeatable: 'Q52!=Yes, I consent', 'Q61=No', 'Q1=' (blank)."
    ),
    reason: str | None = typer.Option(None, help="Reason stored with the --exclude rules."),
    strict: bool = typer.Option(False, help="Fail on answers that match no known choice."),
) -> None:
    """Import a Qualtrics export into SURVEY; idempotent (re-importing the same file adds nothing)."""
    from miners.survey.workflow import ImportRequest, import_survey

    request = ImportRequest(file, survey, sheet, questions, definition, tuple(exclude), reason, strict)
    outcome = import_survey(engine(), request)
    print_import(outcome)


def print_import(outcome: ImportOutcome) -> None:
    """What an import recognised and changed; warnings go to stderr (shared with `report paper`)."""
    plan, result, name = outcome.plan, outcome.result, outcome.request.file.name
    console.print(outcome.recognition.summary(), markup=False)
    for warning in outcome.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", markup=True, soft_wrap=True)
    for fragment, n in sorted(plan.ignored_fragments.items()):
        console.print(
            f"ignored {n} {fragment!r} fragment(s) (a Qualtrics artifact, not a choice; kept in raw rows)", markup=False
        )
    for title, notices in (("unknown fragment(s)", plan.unknown_fragments), ("notice(s)", plan.notices)):
        if notices:
            err_console.print(f"[yellow]warning:[/] {len(notices)} {title}:", markup=True, soft_wrap=True)
            for notice in notices[:SHOWN_NOTICES]:
                err_console.print(f"  {notice}", markup=False, soft_wrap=True)
            if len(notices) > SHOWN_NOTICES:
                err_console.print(f"  … and {len(notices) - SHOWN_NOTICES} more", markup=False)
    kinds = {"single": 0, "multi": 0, "text": 0, **outcome.kinds()}  # numbers and ranks only when there are some
    shown = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    survey = outcome.request.survey
    if result.nothing_new:
        console.print(
            f"nothing new: all {result.responses_in_file} responses of {name} are already in survey "
            f"{survey!r} (0 added, 0 updated)",
            markup=False,
        )
    else:
        derived = f"; {result.derived_written} derived values" if result.derived_written else ""
        dropped = f", {result.questions_dropped} dropped" if result.questions_dropped else ""
        console.print(
            f"survey {survey!r}: {result.responses_in_file} responses in {name}: {result.responses_new} new, "
            f"{result.responses_updated} updated, {result.responses_unchanged} unchanged; "
            f"{len(plan.questions)} questions ({result.questions_new} new, {result.questions_updated} updated"
            f"{dropped}: {shown}); {result.answers_written} answers written{derived}",
            markup=False,
        )
    console.print(f"respondents: {result.included} included, {result.excluded} excluded", markup=False)


@app.command()
def exclude(
    survey: str = typer.Argument(..., help="Survey name."),
    where: list[str] = typer.Option([], "--where", "-w", help="Rule, repeatable: 'Q52!=Yes, I consent', 'Q61=No'."),
    response: list[str] = typer.Option([], "--response", "-r", help="Exclude one response by its key."),
    reason: str | None = typer.Option(None, help="Why (stored with each new rule and shown per response)."),
    clear: bool = typer.Option(False, help="Drop every rule and include everyone again."),
) -> None:
    """Flag respondents as excluded by rule (never deleting them); without options, show the rules."""
    from miners.survey.workflow import exclude_respondents

    outcome = exclude_respondents(engine(), survey, where, response, reason, clear)
    if outcome.cleared is not None:
        console.print(f"survey {survey!r}: all exclusion rules dropped, {outcome.cleared} response(s) included again")
        return
    for rule in outcome.rules:
        console.print(f"rule {rule['rule']!r}: {rule['reason']}", markup=False)
    if not outcome.rules:
        console.print("no exclusion rules")
    console.print(f"respondents: {outcome.included} included, {outcome.excluded} excluded")


@app.command("list")
def list_(fmt: Format = format_option(), out: Path | None = out_option()) -> None:
    """The imported surveys with their respondent and question counts."""
    from db.queries.survey import list_surveys

    frame = list_surveys(engine())
    if frame.empty and fmt == "table" and out is None:
        console.print("no surveys imported yet")
        return

    def render(to: Console) -> None:
        numbers = ("respondents", "included", "excluded", "questions")
        table = new_table("survey", *numbers, "definition", "source file", numeric=numbers)
        for row in frame.itertuples():
            version = row.definition_version
            table.add_row(
                row.survey,
                str(row.respondents),
                str(row.included),
                str(row.excluded),
                str(row.questions),
                "—" if version is None or version != version else f"v{int(version)}",
                str(row.source_file),
            )
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command("questions")
def questions_(survey: str = typer.Argument(..., help="Survey name.")) -> None:
    """The survey's questions: kind and where it comes from (definition, overrides, or guessed), answers."""

    from db.queries.survey import SurveyFilter, list_questions

    frame = list_questions(engine(), SurveyFilter(survey))
    table = new_table(
        "qid", "type", "kind", "choices", "answered", "question", "kind from", numeric=("choices", "answered")
    )
    for row in frame.itertuples():
        if row.kind_source == "definition":
            origin = f"definition v{int(row.definition_version)}"
        elif row.kind_source == "overrides":
            origin = "overrides file"
        else:
            origin = f"guessed: {row.kind_reason}"
        table.add_row(
            row.qid,
            row.qtype or "—",
            row.kind,
            str(row.n_choices),
            str(row.n_answered),
            row.text,
            origin,
        )
    console.print(table)
    guessed = list(frame.loc[frame["kind_source"] == "guessed", "qid"])
    if guessed:
        shown = ", ".join(guessed[:12]) + (", …" if len(guessed) > 12 else "")
        console.print(
            f"{len(guessed)} of {len(frame)} question kinds were guessed from the answers ({shown}); "
            "import with --definition FILE.qsf to use the survey's own types",
            markup=False,
        )


@app.command("definitions")
def definitions_(survey: str = typer.Argument(..., help="Survey name.")) -> None:
    """The survey's stored definitions (.qsf), one version per distinct file; the last one is current."""

    from db.queries.survey import SurveyFilter, definitions, list_surveys

    eng = engine()
    frame = list_surveys(eng)
    if survey not in set(frame["survey"]):
        known = ", ".join(frame["survey"]) or "none imported yet"
        raise InteropError(f"no survey named {survey!r} (surveys: {known})")
    rows = definitions(eng, SurveyFilter(survey))
    if not rows:
        console.print(
            f"survey {survey!r} has no definition: its question kinds were guessed from the answers "
            "(import with --definition FILE.qsf)",
            markup=False,
        )
        return
    table = new_table(
        "version",
        "questions",
        "stored questions",
        "survey id",
        "language",
        "file",
        "loaded (UTC)",
        numeric=("version", "questions", "stored questions"),
    )
    for row in rows:
        table.add_row(
            str(row["version"]),
            str(row["questions"]),
            str(row["stored_questions"]),
            row["qualtrics_id"] or "—",
            row["language"] or "—",
            row["source"] or "—",
            f"{row['loaded_at']:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command()
def counts(
    survey: str = typer.Argument(..., help="Survey name."),
    qid: str = typer.Argument(..., help="Question id, e.g. Q63."),
    include_excluded: bool = typer.Option(False, "--include-excluded", help="Count excluded respondents too."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Counts per choice with both denominators: respondents who answered, and all included respondents."""
    from db.queries.survey import SurveyFilter, question_counts

    frame = question_counts(engine(), SurveyFilter(survey, qid, include_excluded=include_excluded))
    n_answered = int(frame["n_answered"].iloc[0]) if len(frame) else 0
    n_respondents = int(frame["n_respondents"].iloc[0]) if len(frame) else 0
    who = "respondents" if include_excluded else "included respondents"

    def render(to: Console) -> None:
        to.print(f"{qid} ({frame.attrs.get('kind')}): {frame.attrs.get('text')}", markup=False)
        to.print(f"denominators: answered n={n_answered}, all {who} n={n_respondents}")
        numbers = ("count", "% of answered", "% of respondents")
        table = new_table("choice", *numbers, numeric=numbers)
        for row in frame.itertuples():
            table.add_row(
                str(row.choice), str(row.count), f"{row.pct_of_answered:.1f}", f"{row.pct_of_respondents:.1f}"
            )
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command("crosstab")
def crosstab_(
    survey: str = typer.Argument(..., help="Survey name."),
    qid: str = typer.Argument(..., help="Question id for the rows, e.g. Q65."),
    by_arg: str | None = typer.Argument(None, metavar="[BY]", help="Question id for the columns (or --by)."),
    by: str | None = typer.Option(None, "--by", "-b", help="Question id for the columns (the groups), e.g. Q61."),
    include_excluded: bool = typer.Option(False, "--include-excluded", help="Count excluded respondents too."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Respondents per pair of answers to two questions (e.g. problems × ONNX use), with row and column percentages
    beside their denominators and a test of independence where one is valid; JSON and CSV in long form."""
    from db.queries.survey import SurveyFilter, crosstab_test, survey_crosstab

    if by is not None and by_arg is not None and by != by_arg:
        raise InteropError(f"two column questions given ({by_arg} and --by {by}): name one")
    column_qid = by or by_arg
    if column_qid is None:
        raise InteropError("name the question to compare by: --by QID (e.g. --by Q61)")
    frame = survey_crosstab(engine(), SurveyFilter(survey, qid, include_excluded=include_excluded), column_qid)

    def render(to: Console) -> None:
        to.print(f"{qid}: {frame.attrs['text']}", markup=False)
        to.print(f"× {column_qid}: {frame.attrs['by_text']}", markup=False)
        to.print(f"respondents who answered both: n={frame.attrs['n_both']}")
        if frame.empty:
            return
        rows = list(dict.fromkeys(frame["choice"]))
        columns = list(dict.fromkeys(frame["by_choice"]))
        cells = {(r.choice, r.by_choice): r for r in frame.itertuples()}
        row_n = dict(zip(frame["choice"], frame["row_n"], strict=True))
        column_n = dict(zip(frame["by_choice"], frame["column_n"], strict=True))
        for title, pct in (("count (% of row)", "pct_of_row"), ("count (% of column)", "pct_of_column")):
            headers = [str(c) for c in columns]
            table = new_table(qid, *headers, "row n", numeric=(*headers, "row n"), title=title)
            for choice in rows:
                shown = []
                for by_choice in columns:
                    cell = cells.get((choice, by_choice))
                    shown.append("0" if cell is None else f"{cell.count} ({getattr(cell, pct):.1f}%)")
                table.add_row(str(choice), *shown, str(row_n[choice]))
            table.add_row("column n", *(str(column_n[c]) for c in columns), str(frame.attrs["n_both"]))
            to.print(table)
        to.print(crosstab_test(frame).summary(), markup=False)

    emit(fmt, out, frame, render=render)
