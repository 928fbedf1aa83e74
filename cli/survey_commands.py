"""`interop survey`: import Qualtrics exports, exclude respondents by rule, and look at counts."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import UserError, console, engine, err_console, user_errors

app = typer.Typer(
    help="Qualtrics survey responses: import, exclusion rules, questions and counts.", no_args_is_help=True
)

SHOWN_NOTICES = 10


def _schema_guard(exc: Exception) -> UserError:
    """A database error that most likely means the schema is missing, as one actionable line."""
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"database error ({first}); is the schema current? run `interop db upgrade`")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="Qualtrics export (.xlsx or .csv) with the QID header row."),
    survey: str = typer.Option(..., "--survey", "-s", help="Name to store the survey under (re-imports add to it)."),
    sheet: str | None = typer.Option(None, help="Worksheet of an .xlsx export (default: the first)."),
    questions: Path | None = typer.Option(
        None, "--questions", "-q", help="Overrides file (YAML/JSON): kinds, known choices, ignored fragments."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Exclusion rule, repeatable: 'Q52!=Yes, I consent', 'Q61=No', 'Q1=' (blank)."
    ),
    reason: str | None = typer.Option(None, help="Reason stored with the --exclude rules."),
    strict: bool = typer.Option(False, help="Fail on multi-select fragments that match no known choice."),
) -> None:
    """Import a Qualtrics export into SURVEY; idempotent (re-importing the same file adds nothing)."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import session_scope
    from db.ingest import recorded_run
    from db.queries.survey import stored_questions
    from miners.survey.exclusion import ExclusionRule
    from miners.survey.loader import load_plan
    from miners.survey.overrides import load_overrides
    from miners.survey.plan import StoredQuestion, build_plan
    from miners.survey.reader import ExportError, read_export

    with user_errors():
        if not survey.strip() or len(survey) > 100:
            raise UserError("--survey must be a non-empty name of at most 100 characters")
        eng = engine()
        params = {
            "file": str(file),
            "survey": survey,
            "exclude": list(exclude),
            "questions_file": str(questions) if questions else None,
        }
        try:
            # The run is recorded from the start, so an unreadable export shows on the Overview as a failure.
            with recorded_run(eng, "survey-import", params) as run:
                export = read_export(file, sheet=sheet)
                run.parameters.update(sha256=export.sha256, format=export.format)
                overrides = load_overrides(questions)
                rules = [ExclusionRule.parse(rule, reason) for rule in exclude]
                stored = {q: StoredQuestion(k, r, tuple(c)) for q, (k, r, c) in stored_questions(eng, survey).items()}
                plan = build_plan(export, overrides, stored)
                if strict and plan.unknown_fragments:
                    raise UserError(
                        f"{file.name}: {len(plan.unknown_fragments)} fragment(s) match no known choice, first: "
                        f"{plan.unknown_fragments[0]} (--strict); add the choice to the --questions file"
                    )
                with session_scope(eng) as session:
                    result = load_plan(session, survey, export, plan, rules)
                run.counts.update(result.counts())
                run.add("unknown_fragments", len(plan.unknown_fragments))
                run.add("ignored_fragments", sum(plan.ignored_fragments.values()))
        except ExportError as exc:
            raise UserError(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise _schema_guard(exc) from exc

    for fragment, n in sorted(plan.ignored_fragments.items()):
        console.print(f"ignored {n} {fragment!r} fragment(s) (a Qualtrics artifact, not a choice; kept in raw rows)")
    for title, notices in (("unknown fragment(s)", plan.unknown_fragments), ("notice(s)", plan.notices)):
        if notices:
            err_console.print(f"[yellow]warning:[/] {len(notices)} {title}:", markup=True, soft_wrap=True)
            for notice in notices[:SHOWN_NOTICES]:
                err_console.print(f"  {notice}", markup=False, soft_wrap=True)
            if len(notices) > SHOWN_NOTICES:
                err_console.print(f"  … and {len(notices) - SHOWN_NOTICES} more", markup=False)
    kinds = {k: sum(1 for q in plan.questions if q.kind == k) for k in ("single", "multi", "text")}
    if result.nothing_new:
        console.print(
            f"nothing new: all {result.responses_in_file} responses of {file.name} are already in survey "
            f"{survey!r} (0 added, 0 updated)"
        )
    else:
        console.print(
            f"survey {survey!r}: {result.responses_in_file} responses in {file.name}: {result.responses_new} new, "
            f"{result.responses_updated} updated, {result.responses_unchanged} unchanged; "
            f"{len(plan.questions)} questions ({result.questions_new} new, {result.questions_updated} updated: "
            f"{kinds['single']} single, {kinds['multi']} multi, {kinds['text']} text); "
            f"{result.answers_written} answers written"
        )
    console.print(f"respondents: {result.included} included, {result.excluded} excluded")


@app.command()
def exclude(
    survey: str = typer.Argument(..., help="Survey name."),
    where: list[str] = typer.Option([], "--where", "-w", help="Rule, repeatable: 'Q52!=Yes, I consent', 'Q61=No'."),
    response: list[str] = typer.Option([], "--response", "-r", help="Exclude one response by its key."),
    reason: str | None = typer.Option(None, help="Why (stored with each new rule and shown per response)."),
    clear: bool = typer.Option(False, help="Drop every rule and include everyone again."),
) -> None:
    """Flag respondents as excluded by rule (never deleting them); without options, show the rules."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import select

    from db.engine import session_scope
    from db.models.survey import Survey
    from miners.survey.exclusion import ExclusionRule
    from miners.survey.loader import apply_exclusions, clear_exclusions
    from miners.survey.reader import ExportError

    with user_errors():
        try:
            rules = [ExclusionRule.parse(w, reason) for w in where]
            rules += [ExclusionRule.parse(f"response={key}", reason) for key in response]
            with session_scope(engine()) as session:
                row = session.exec(select(Survey).where(Survey.name == survey)).first()
                if row is None:
                    raise UserError(f"no survey named {survey!r}; import it with `interop survey import`")
                if clear:
                    changed = clear_exclusions(session, row)
                    console.print(
                        f"survey {survey!r}: all exclusion rules dropped, {changed} response(s) included again"
                    )
                    return
                result = apply_exclusions(session, row, rules)
                stored = list(row.exclusion_rules)
        except ExportError as exc:
            raise UserError(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise _schema_guard(exc) from exc
    for rule in stored:
        console.print(f"rule {rule['rule']!r}: {rule['reason']}")
    if not stored:
        console.print("no exclusion rules")
    console.print(f"respondents: {result.included} included, {result.excluded} excluded")


@app.command("list")
def list_() -> None:
    """The imported surveys with their respondent and question counts."""
    from rich.table import Table

    from db.queries.survey import list_surveys

    frame = list_surveys(engine())
    if frame.empty:
        console.print("no surveys imported yet")
        return
    table = Table("survey", "respondents", "included", "excluded", "questions", "source file")
    for row in frame.itertuples():
        table.add_row(
            row.survey,
            str(row.respondents),
            str(row.included),
            str(row.excluded),
            str(row.questions),
            str(row.source_file),
        )
    console.print(table)


@app.command("questions")
def questions_(survey: str = typer.Argument(..., help="Survey name.")) -> None:
    """The survey's questions: kind (and why), number of known choices, respondents who answered."""
    from rich.table import Table

    from db.queries.survey import SurveyLookupError, list_questions

    with user_errors():
        try:
            frame = list_questions(engine(), survey)
        except SurveyLookupError as exc:
            raise UserError(str(exc)) from exc
    table = Table("qid", "kind", "choices", "answered", "question", "why this kind")
    for row in frame.itertuples():
        table.add_row(row.qid, row.kind, str(row.n_choices), str(row.n_answered), row.text[:70], row.kind_reason)
    console.print(table)


@app.command()
def counts(
    survey: str = typer.Argument(..., help="Survey name."),
    qid: str = typer.Argument(..., help="Question id, e.g. Q63."),
    include_excluded: bool = typer.Option(False, help="Count excluded respondents too."),
    csv: Path | None = typer.Option(None, help="Also write the table to this CSV file."),
) -> None:
    """Counts per choice with both denominators: respondents who answered, and all included respondents."""
    from rich.table import Table

    from db.queries.survey import SurveyLookupError, question_counts

    with user_errors():
        try:
            frame = question_counts(engine(), survey, qid, include_excluded=include_excluded)
        except SurveyLookupError as exc:
            raise UserError(str(exc)) from exc
    if csv is not None:
        frame.to_csv(csv, index=False)
    n_answered = int(frame["n_answered"].iloc[0]) if len(frame) else 0
    n_respondents = int(frame["n_respondents"].iloc[0]) if len(frame) else 0
    who = "respondents" if include_excluded else "included respondents"
    console.print(f"{qid} ({frame.attrs.get('kind')}): {frame.attrs.get('text')}")
    console.print(f"denominators: answered n={n_answered}, all {who} n={n_respondents}")
    table = Table("choice", "count", "% of answered", "% of respondents")
    for row in frame.itertuples():
        table.add_row(
            str(row.choice)[:90], str(row.count), f"{row.pct_of_answered:.1f}", f"{row.pct_of_respondents:.1f}"
        )
    console.print(table)
