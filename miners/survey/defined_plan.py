"""Plan an import with the survey's definition: kinds, choices and answers read exactly, nothing guessed.

Cells are read against the definition's choices: a numeric-values export writes each choice's recode
value (its id when it has none), a choice-text export the choice text; which of the two an export is,
is decided once from the cells that only one reading explains. Multi-select cells are split on the
definition's own choices, matrix rows are questions of their own with the matrix's scale as choices.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from miners.survey.choices import split_cell
from miners.survey.definition import Choice, SurveyDefinition, plain_text
from miners.survey.layout import ExportLayout
from miners.survey.matching import ColumnMap, Slot, Target
from miners.survey.plan import (
    AnswerPlan,
    DerivedPlan,
    Notice,
    QuestionPlan,
    ResponsePlan,
    SurveyPlan,
    response_keys,
)
from miners.survey.reader import QualtricsExport, column_letter

#: Numeric exports can recode "seen but not answered" as -99; it is not an answer.
SEEN_UNANSWERED = "-99"
NOT_SELECTED = ("0", SEEN_UNANSWERED)


def _norm(text: str) -> str:
    return plain_text(text)


@dataclass
class _Reading:
    """How one target's cells map to its options."""

    by_label: dict[str, Choice]
    by_code: dict[str, Choice | None]  # None: a code several choices share (ambiguous)
    labels: list[str]

    @classmethod
    def of(cls, options: tuple[Choice, ...]) -> _Reading:
        by_code: dict[str, Choice | None] = {}
        for option in options:
            by_code[option.code] = None if option.code in by_code else option
        return cls({_norm(o.text): o for o in options}, by_code, [o.text for o in options])


def _closed_value_columns(column_map: ColumnMap) -> list[tuple[Target, str]]:
    by_key = {t.key: t for t in column_map.targets}
    return [
        (by_key[slot.target], column)
        for column, slot in column_map.slots.items()
        if slot.role == "value" and slot.target in by_key and by_key[slot.target].kind in ("single", "multi")
    ]


def value_format(export: QualtricsExport, column_map: ColumnMap) -> tuple[str | None, str]:
    """("numeric" | "text" | None, evidence) from the cells that only one of the two readings explains."""
    as_text = as_code = 0
    for target, column in _closed_value_columns(column_map):
        reading = _Reading.of(target.options)
        for row in export.rows:
            cell = row.cells.get(column)
            if cell is None:
                continue
            if target.kind == "multi":
                text_ok = all(f.known for f in split_cell(cell, reading.labels))
                code_ok = all(p.strip() in reading.by_code for p in cell.split(","))
            else:
                text_ok = _norm(cell) in reading.by_label
                code_ok = cell.strip() in reading.by_code
            as_text += text_ok and not code_ok
            as_code += code_ok and not text_ok
    if as_code > as_text:
        return "numeric", f"{as_code} cells are choice codes, {as_text} choice texts"
    if as_text:
        return "text", f"{as_text} cells are choice texts, {as_code} choice codes"
    return None, "no answer to a choice question tells the two apart"


class DefinedPlanner:
    """Reads every response against the definition (one instance per import)."""

    def __init__(
        self,
        export: QualtricsExport,
        definition: SurveyDefinition,
        column_map: ColumnMap,
        layout: ExportLayout,
        ignore: set[str],
        definition_label: str,
    ) -> None:
        self.export, self.definition, self.map, self.layout = export, definition, column_map, layout
        self.ignore = ignore
        self.label = definition_label
        self.format, self.evidence = value_format(export, column_map)
        self.letters = {c.name: column_letter(c.index) for c in export.columns}
        self.index = {c.name: c.index for c in export.columns}
        self.imports = {c.name: c.import_id for c in export.columns}
        self.readings = {t.key: _Reading.of(t.options) for t in column_map.targets}
        self.plan = SurveyPlan(questions=[], responses=[], value_format=self.format, value_evidence=self.evidence)
        self.slots_of: dict[str, list[tuple[str, Slot]]] = {}
        for column, slot in column_map.slots.items():
            self.slots_of.setdefault(slot.target, []).append((column, slot))
        for items in self.slots_of.values():
            items.sort(key=lambda cs: self.index[cs[0]])

    # --- questions -----------------------------------------------------------------------------------------

    def question(self, target: Target) -> QuestionPlan:
        columns = self.map.columns.get(target.key, [])
        first = min(columns, key=lambda n: self.index[n])
        owner = target.owner
        reason = f"{self.label}: {owner.source_type}"
        if target.row is not None and target.key != owner.tag:
            what = "field" if owner.qtype == "form" else "item" if owner.qtype in ("slider", "constant-sum") else "row"
            reason += f", {what} {target.row.id} of {owner.tag}"
            if target.source is not owner:
                reason += f" (column {target.source.tag.split('#')[-1]})"
        text_columns: dict[str, str] = {}
        details: dict[str, Any] = {"qsf_id": owner.qid, "type": owner.source_type}
        items: dict[str, str] = {}
        for column, slot in self.slots_of.get(target.key, []):
            option = next((o for o in (*target.options, *owner.choices) if o.id == slot.choice), None)
            if slot.role == "text":
                if target.row is not None and slot.choice == target.row.id and target.kind != "number":
                    details["row_text_column"] = column
                elif option is not None:
                    text_columns[option.text] = column
            elif slot.role in ("choice", "item", "cell") and option is not None:
                items[option.text] = column
            elif slot.role == "derived":
                details.setdefault("derived", {})[slot.label] = column
        for column, (base, label) in self.layout.derived.items():
            if base in columns:
                details.setdefault("derived", {})[label] = column
        recodes = {o.text: o.code for o in target.options if o.recode is not None}
        extra = {
            "block": owner.block,
            "display_logic": owner.display_logic,
            "recodes": recodes,
            "columns": items,
            "row": target.row.text if target.row is not None else None,
            "side_by_side_column": target.source.text if target.source is not owner else None,
        }
        details.update({k: v for k, v in extra.items() if v})
        choices = [] if target.kind in ("text", "number") else list(dict.fromkeys(o.text for o in target.options))
        if target.kind == "text" and target.options:
            details["cells"] = [o.text for o in target.options]
        return QuestionPlan(
            qid=target.key,
            position=self.index[first],
            text=target.text,
            kind=target.kind,
            kind_reason=reason,
            import_id=self.imports.get(first),
            choices=choices,
            text_columns=text_columns,
            closed=True,
            qtype=owner.qtype,
            kind_source="definition",
            parent_qid=owner.tag if target.key != owner.tag else None,
            details=details,
        )

    # --- answers -------------------------------------------------------------------------------------------

    def _where(self, column: str) -> str:
        return f"{column} (column {self.letters[column]})"

    def _code(self, part: str, reading: _Reading, row: int, column: str) -> tuple[str, bool] | None:
        option = reading.by_code.get(part)
        if option is not None:
            return option.text, True
        if part in reading.by_code:  # several choices share this recode value
            self.plan.notices.append(Notice(row, self._where(column), f"code {part!r} stands for several choices"))
            return part, False
        if part == SEEN_UNANSWERED:
            self.plan.ignored_fragments["-99 (seen but unanswered)"] += 1
            return None
        self.plan.unknown_fragments.append(Notice(row, self._where(column), f"code {part!r} is no choice's value"))
        return part, False

    def _closed(self, cell: str, target: Target, row: int, column: str) -> list[tuple[str, bool]]:
        """The choices a value cell names (several for a multi-select), each with whether it is known."""
        reading = self.readings[target.key]
        stripped = cell.strip()
        if stripped in self.ignore:
            self.plan.ignored_fragments[stripped] += 1
            return []
        numeric = self.format == "numeric" or (self.format is None and _norm(cell) not in reading.by_label)
        if target.kind == "single":
            if not numeric and _norm(cell) in reading.by_label:
                return [(reading.by_label[_norm(cell)].text, True)]
            if numeric:
                found = self._code(stripped, reading, row, column)
                return [found] if found else []
            self.plan.unknown_fragments.append(Notice(row, self._where(column), f"unknown choice {stripped!r}"))
            return [(stripped, False)]
        out: list[tuple[str, bool]] = []
        if numeric:
            for part in (p.strip() for p in cell.split(",") if p.strip()):
                found = self._code(part, reading, row, column)
                if found and found[0] not in (c for c, _ in out):
                    out.append(found)
            return out
        for fragment in split_cell(cell, reading.labels):
            if fragment.text in self.ignore:
                self.plan.ignored_fragments[fragment.text] += 1
            elif fragment.text not in (c for c, _ in out):
                out.append((fragment.text, fragment.known))
                if not fragment.known:
                    message = f"fragment {fragment.text!r} matches no choice of the definition"
                    self.plan.unknown_fragments.append(Notice(row, self._where(column), message))
        return out

    def _mark(self, cell: str, option: Choice, row: int, column: str) -> bool:
        """Whether a split column's cell selects its choice (1, the code or the text; 0/-99: seen, not chosen)."""
        stripped = cell.strip()
        if stripped in NOT_SELECTED and stripped not in (option.code, _norm(option.text)):
            return False
        if stripped not in ("1", option.code) and _norm(cell) != _norm(option.text):
            message = f"unexpected mark {stripped!r} for {option.text!r}; read as selected"
            self.plan.notices.append(Notice(row, self._where(column), message))
        return True

    def answers(self, target: Target, cells: dict[str, str], row: int) -> list[AnswerPlan]:
        key = target.key
        chosen: list[tuple[str | None, bool]] = []
        texts: dict[str | None, str] = {}
        values: dict[str | None, float | None] = {}
        ranks: list[tuple[float, str, bool]] = []
        text_columns: dict[str, str] = {}
        row_text: str | None = None
        for column, slot in self.slots_of.get(key, []):
            cell = cells.get(column)
            if cell is None or slot.role in ("page", "derived"):
                continue
            option = next((o for o in (*target.options, *target.owner.choices) if o.id == slot.choice), None)
            if slot.role == "value" and target.kind in ("single", "multi"):
                chosen.extend(c for c in self._closed(cell, target, row, column) if c[0] not in {x for x, _ in chosen})
            elif slot.role == "value" and target.kind == "number":
                texts[None], values[None] = cell, _number(cell)
                chosen.append((None, values[None] is not None))
                if values[None] is None:
                    self.plan.unknown_fragments.append(Notice(row, self._where(column), f"{cell!r} is not a number"))
            elif slot.role == "value":  # text entry, form field
                chosen.append((None, True))
                texts[None] = cell
            elif slot.role == "choice" and option is not None and self._mark(cell, option, row, column):
                chosen.append((option.text, True))
            elif slot.role == "cell" and option is not None:
                chosen.append((option.text, True))
                texts[option.text] = cell
            elif slot.role == "item" and option is not None:
                rank = _number(cell)
                if rank is None:
                    self.plan.unknown_fragments.append(
                        Notice(row, self._where(column), f"rank {cell!r} of {option.text!r}")
                    )
                ranks.append((rank if rank is not None else float("inf"), option.text, rank is not None))
            elif slot.role == "text":
                if target.row is not None and slot.choice == target.row.id:
                    row_text = cell
                elif option is not None:
                    texts[option.text], text_columns[option.text] = cell, column
        labels = {c for c, _ in chosen} | {label for _, label, _ in ranks}
        for label, column in text_columns.items():
            if label not in labels and target.kind in ("single", "multi", "rank"):
                message = f"text given but {label!r} not {'ranked' if ranks else 'selected'}; kept with it"
                self.plan.notices.append(Notice(row, self._where(column), message))
                if target.kind == "rank":
                    ranks.append((float("inf"), label, True))
                else:
                    chosen.append((label, True))
        if ranks:
            ranked = sorted(ranks, key=lambda r: r[0])
            return [
                AnswerPlan(key, i, label, texts.get(label), known, None if rank == float("inf") else rank)
                for i, (rank, label, known) in enumerate(ranked)
            ]
        if row_text is not None:  # the row's own text box ("Other: …"): with its answer, else on its own
            row_label = target.row.text if target.row is not None else None
            if chosen and target.kind in ("single", "multi"):
                texts.update({label: row_text for label, _ in chosen if label not in texts})
            else:
                chosen.append((row_label, True))
                texts[row_label] = row_text
        return [
            AnswerPlan(key, i, choice, texts.get(choice), known, values.get(choice) if choice is None else None)
            for i, (choice, known) in enumerate(chosen)
        ]

    def build(self) -> SurveyPlan:
        self.plan.questions = [self.question(t) for t in self.map.targets]
        derived = {
            column: (slot.target, slot.label) for column, slot in self.map.slots.items() if slot.role == "derived"
        }
        owner_of = {c: key for key, cols in self.map.columns.items() for c in cols}
        for column, (base, label) in self.layout.derived.items():
            if base in owner_of:
                derived[column] = (owner_of[base], label)
        for (key, source), row in zip(response_keys(self.export, self.layout), self.export.rows, strict=True):
            response = ResponsePlan(key=key, key_source=source, row_number=row.row_number, raw=dict(row.cells))
            for target in self.map.targets:
                response.answers.extend(self.answers(target, row.cells, row.row_number))
            for column, (qid, label) in derived.items():
                if column in row.cells:
                    response.derived.append(DerivedPlan(qid, label, row.cells[column]))
            self.plan.responses.append(response)
        return self.plan


def _number(cell: str) -> float | None:
    try:
        value = float(cell.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def build_defined_plan(
    export: QualtricsExport,
    definition: SurveyDefinition,
    column_map: ColumnMap,
    layout: ExportLayout,
    ignore: set[str] | None = None,
    definition_label: str = "definition",
) -> SurveyPlan:
    """Questions and answers of `export` read with `definition` (its columns already matched)."""
    planner = DefinedPlanner(export, definition, column_map, layout, set(ignore or ()), definition_label)
    plan = planner.build()
    counts = Counter(q.qid for q in plan.questions)
    assert all(n == 1 for n in counts.values()), counts
    return plan
