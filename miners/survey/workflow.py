"""The survey import and exclusion workflows: read, recognise, plan, load in one transaction, record the run.

The CLI and `report paper` call these and only print what they return; every user-facing problem is a
`SurveyImportError` (one line naming the file, row or field), and nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from db.errors import first_line
from db.ingest import RunLog
from db.mining import Batch
from miners.survey.definition import SurveyDefinition
from miners.survey.exclusion import ExclusionRule
from miners.survey.layout import ExportLayout, recognise_layout
from miners.survey.loader import ImportResult
from miners.survey.plan import StoredQuestion, SurveyPlan
from miners.survey.qsf import read_definition
from miners.survey.reader import QID_PATTERN, ExportError, QualtricsExport

FORMATS = {"numeric": "numeric values", "text": "choice text", None: "values undetermined"}


class SurveyImportError(ExportError):
    """An import or exclusion that cannot go ahead; the message is one line for the user."""


def database_error(exc: SQLAlchemyError) -> SurveyImportError:
    """A database error during a survey command, most likely a missing schema, as one actionable line."""
    return SurveyImportError(f"database error ({first_line(exc)}); is the schema current? run `interop db upgrade`")


@dataclass(frozen=True)
class ImportRequest:
    """What to import: the export, the survey's name, and the optional definition, overrides and rules."""

    file: Path
    survey: str
    sheet: str | None = None
    questions: Path | None = None
    definition: Path | None = None
    exclude: tuple[str, ...] = ()
    reason: str | None = None
    strict: bool = False

    def parameters(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "survey": self.survey,
            "exclude": list(self.exclude),
            "questions_file": str(self.questions) if self.questions else None,
            "definition_file": str(self.definition) if self.definition else None,
        }


@dataclass
class Recognition:
    """What the import recognised about the export and which definition it read it with."""

    layout: ExportLayout
    value_format: str | None
    value_evidence: str
    definition_source: str | None = None  # the file given, or "stored" for the survey's current definition
    definition_version: int | None = None
    definition_new: bool = False
    definition_questions: int = 0

    def summary(self) -> str:
        """E.g. "export format: numeric values, new style, with ImportId row, language DE; definition …"."""
        line = f"export format: {FORMATS[self.value_format]}, {self.layout.describe()}"
        if self.definition_source is None:
            return line + "; no definition: question kinds guessed from the answers (give --definition FILE.qsf)"
        if self.definition_source == "stored":
            where = f"version {self.definition_version}, stored with the survey"
        elif self.definition_new:
            where = f"{self.definition_source}, stored as version {self.definition_version}"
        else:
            where = f"{self.definition_source} = stored version {self.definition_version}"
        return f"{line}; definition: {self.definition_questions} questions ({where})"

    def to_json(self) -> dict[str, Any]:
        return {
            "value_format": self.value_format,
            "value_evidence": self.value_evidence,
            "style": self.layout.style,
            "import_id_row": self.layout.import_ids,
            "language": self.layout.language,
            "language_evidence": self.layout.language_evidence,
            "response_id": self.layout.response_id,
            "response_id_evidence": self.layout.response_id_evidence,
            "metadata": {name: field_ for name, field_ in self.layout.fields.items()},
            "derived": {name: list(base) for name, base in self.layout.derived.items()},
            "definition_version": self.definition_version,
        }


@dataclass
class ImportOutcome:
    """The messages' data: what was recognised, the plan (notices, ignored fragments) and what changed."""

    request: ImportRequest
    recognition: Recognition
    plan: SurveyPlan
    result: ImportResult
    run_id: int
    warnings: list[str] = field(default_factory=list)

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.plan.questions:
            counts[q.kind] = counts.get(q.kind, 0) + 1
        return counts

    @property
    def guessed(self) -> list[str]:
        return [q.qid for q in self.plan.questions if q.kind_source == "guessed"]


def _definition_version(engine: Engine, survey: str, spec: SurveyDefinition) -> tuple[int, bool]:
    """The version `spec` has (or will get) in the survey's definitions, and whether it is new."""
    from db.queries.survey import SurveyFilter, definitions

    stored = definitions(engine, SurveyFilter(survey))
    digest = spec.content_hash()
    same = next((d for d in stored if d["content_hash"] == digest), None)
    if same is not None:
        return int(same["version"]), False
    return (int(stored[-1]["version"]) + 1 if stored else 1), True


def _choose_definition(
    engine: Engine, request: ImportRequest
) -> tuple[SurveyDefinition | None, str | None, int | None, bool]:
    """(definition, source label, version, new): the file given, else the survey's current stored one."""
    from db.queries.survey import SurveyFilter, definitions

    if request.definition is not None:
        spec = read_definition(request.definition)
        version, new = _definition_version(engine, request.survey, spec)
        return spec, request.definition.name, version, new
    stored = definitions(engine, SurveyFilter(request.survey))
    if not stored:
        return None, None, None, False
    current = stored[-1]
    return SurveyDefinition.from_json(current["spec"]), "stored", int(current["version"]), False


def _plan_with_definition(
    export: QualtricsExport, spec: SurveyDefinition, name: str, version: int, ignore: set[str]
) -> tuple[SurveyPlan, ExportLayout]:
    """Match the definition to the export (refusing a mismatch) and read every answer with it."""
    from miners.survey.defined_plan import build_defined_plan
    from miners.survey.matching import match_columns, question_names

    names = question_names(spec)
    layout = recognise_layout(export, is_question=lambda column: column in names or bool(QID_PATTERN.match(column)))
    for field_name in spec.embedded_data:
        if layout.roles.get(field_name) == "question":
            layout.roles[field_name] = "embedded"
    not_questions = {column for column, role in layout.roles.items() if role != "question"}
    column_map = match_columns(spec, export, not_questions)
    mismatch = column_map.mismatch(name, export.path.name)
    if mismatch:
        raise SurveyImportError(mismatch)
    plan = build_defined_plan(export, spec, column_map, layout, ignore, definition_label=f"definition v{version}")
    for tag, columns in column_map.unsupported.items():
        q = next(q for q in spec.questions if q.tag == tag)
        plan.warnings.append(
            f"{tag} ({q.source_type}) is a question type this import does not read; its columns stay in the raw "
            f"rows: {', '.join(columns[:6])}{' …' if len(columns) > 6 else ''}"
        )
    plan.warnings.extend(f"definition: {note}" for note in spec.notes)
    return plan, layout


def import_survey(engine: Engine, request: ImportRequest) -> ImportOutcome:
    """Import one export into a survey, idempotently; the run is recorded whatever happens.

    With a definition (given, or stored by an earlier import) questions, kinds and choices are the
    definition's; without one, today's heuristics decide and say so.
    """
    from db.mining import mine

    if not request.survey.strip() or len(request.survey) > 100:
        raise SurveyImportError("--survey must be a non-empty name of at most 100 characters")
    miner = SurveyImport(engine, request)
    try:
        # The run is recorded from the start, so an unreadable export shows on the Overview as a failure.
        mine(engine, miner)
    except SQLAlchemyError as exc:
        raise database_error(exc) from exc
    if miner.outcome is None:
        raise RuntimeError("the survey import loaded nothing")
    return miner.outcome


@dataclass
class PlannedExport:
    """An export as read and understood: how each column is read (the plan), its exclusion rules, its definition."""

    export: QualtricsExport
    plan: SurveyPlan
    rules: list[ExclusionRule]
    spec: SurveyDefinition | None
    recognition: Recognition


class SurveyImport:
    """The `db.mining.Miner` of one Qualtrics export: a single batch, the whole planned file, and no cursor
    (a file is imported whole and idempotently: responses are keyed, so a re-import adds nothing)."""

    kind = "survey-import"

    def __init__(self, engine: Engine, request: ImportRequest) -> None:
        self.engine, self.request = engine, request
        self.outcome: ImportOutcome | None = None

    def parameters(self) -> dict[str, Any]:
        return self.request.parameters()

    def opened(self, run: RunLog) -> AbstractContextManager[None]:
        return nullcontext()

    def fetch(self, run: RunLog) -> Iterator[Batch[PlannedExport, None]]:
        """Read the export, recognise its layout and plan every column; refuse what cannot be read as asked."""
        from db.queries.survey import SurveyFilter, stored_questions
        from miners.survey.overrides import load_overrides
        from miners.survey.plan import build_plan
        from miners.survey.reader import read_export

        engine, request = self.engine, self.request
        export = read_export(request.file, sheet=request.sheet)
        run.parameters.update(sha256=export.sha256, format=export.format)
        overrides = load_overrides(request.questions)
        rules = [ExclusionRule.parse(rule, request.reason) for rule in request.exclude]
        spec, source, version, new = _choose_definition(engine, request)
        ignore = set(overrides.ignore_fragments)
        if spec is not None:
            if overrides.questions:
                raise SurveyImportError(
                    f"{request.questions}: sets kinds and choices of {', '.join(sorted(overrides.questions))}, "
                    "which the survey's definition already gives; drop the questions from the overrides file"
                )
            assert version is not None
            name = str(source) if source != "stored" else f"v{version} (stored with survey {request.survey!r})"
            plan, layout = _plan_with_definition(export, spec, name, version, ignore)
        else:
            layout = recognise_layout(export)
            known = stored_questions(engine, SurveyFilter(request.survey))
            stored = {
                qid: StoredQuestion(kind, reason, tuple(choices), origin)
                for qid, (kind, reason, choices, origin) in known.items()
            }
            plan = build_plan(export, overrides, stored, layout)
        recognition = Recognition(
            layout,
            plan.value_format,
            plan.value_evidence,
            definition_source=source,
            definition_version=version,
            definition_new=new,
            definition_questions=len(spec.answered) if spec is not None else 0,
        )
        run.parameters.update(recognised=recognition.to_json())
        if request.strict and plan.unknown_fragments:
            raise SurveyImportError(
                f"{request.file.name}: {len(plan.unknown_fragments)} fragment(s) match no known choice, first: "
                f"{plan.unknown_fragments[0]} (--strict); "
                + ("check the export against the definition" if spec else "add the choice to the --questions file")
            )
        yield Batch([PlannedExport(export, plan, rules, spec, recognition)], final=True)

    def load(self, batch: Batch[PlannedExport, None], run: RunLog) -> None:
        """Write the planned export in one transaction."""
        from db.engine import session_scope
        from miners.survey.loader import load_plan

        request = self.request
        for item in batch.items:
            with session_scope(self.engine) as session:
                definition = (item.spec, str(request.definition) if request.definition else None) if item.spec else None
                result = load_plan(
                    session, request.survey, item.export, item.plan, item.rules, definition, item.recognition.to_json()
                )
            run.counts.update(result.counts())
            run.add("unknown_fragments", len(item.plan.unknown_fragments))
            run.add("ignored_fragments", sum(item.plan.ignored_fragments.values()))
            self.outcome = ImportOutcome(request, item.recognition, item.plan, result, run.id, list(item.plan.warnings))


@dataclass
class ExclusionOutcome:
    survey: str
    rules: list[dict[str, str]]
    included: int
    excluded: int
    cleared: int | None = None  # responses included again by --clear


def exclude_respondents(
    engine: Engine, survey: str, where: Sequence[str], responses: Sequence[str], reason: str | None, clear: bool
) -> ExclusionOutcome:
    """Add exclusion rules (or drop them all) and re-evaluate every response, in one transaction."""
    from sqlmodel import select

    from db.engine import session_scope
    from db.models.survey import Survey
    from miners.survey.loader import apply_exclusions, clear_exclusions

    try:
        rules = [ExclusionRule.parse(w, reason) for w in where]
        rules += [ExclusionRule.parse(f"response={key}", reason) for key in responses]
        with session_scope(engine) as session:
            row = session.exec(select(Survey).where(Survey.name == survey)).first()
            if row is None:
                raise SurveyImportError(f"no survey named {survey!r}; import it with `interop survey import`")
            if clear:
                changed = clear_exclusions(session, row)
                return ExclusionOutcome(survey, [], 0, 0, cleared=changed)
            result = apply_exclusions(session, row, rules)
            return ExclusionOutcome(survey, list(row.exclusion_rules), result.included, result.excluded)
    except SQLAlchemyError as exc:
        raise database_error(exc) from exc
