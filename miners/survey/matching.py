"""Match a survey definition to the columns of an export: which column holds which question, row or choice.

Each question of the definition produces columns by Qualtrics' export rules (checked against real exports
by the surveyir project): a choice question's column is its export tag (`Q1`), text-entry choices add
`Q1_4_TEXT`; a multi-select question is one comma-joined column or one column per choice ("split
multi-value fields"); matrix rows are `Q5_<position>` or the row's own export tag; multi-answer and text
matrices add the scale point (`Q5_1_2`); sliders, rank order and form fields are `Q7_<choice id>`; side-by-
side columns are `Q9#1_<row>`; text entry is `Q3` (ImportId `QID3_TEXT`). With the ImportId row, columns
are matched on ImportIds (stable when a column was renamed); without it, on names. Where Qualtrics has
used more than one naming (positions or ids), the one that matches more columns wins.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from miners.survey.definition import Choice, Question, SurveyDefinition
from miners.survey.layout import QUESTION_IMPORT_ID
from miners.survey.reader import QID_PATTERN, ExportColumn, QualtricsExport

TIMING_PARTS: tuple[tuple[str, str], ...] = (
    ("First Click", "FIRST_CLICK"),
    ("Last Click", "LAST_CLICK"),
    ("Page Submit", "PAGE_SUBMIT"),
)
TIMING_PARTS += (("Click Count", "CLICK_COUNT"),)
META_PARTS = (("Browser", "BROWSER"), ("Version", "VERSION"), ("Operating System", "OS"), ("Resolution", "RESOLUTION"))
SHOWN = 8
_ByImport = dict[tuple[str, str | None], ExportColumn]
LOOP_COLUMN = re.compile(r"^\d+_Q")
OWNER = re.compile(r"^(?:\d+_)?(QID\d+(?:#\d+)?)(?:_|$)")


@dataclass
class Target:
    """A question as it will be stored: one per choice question, matrix row, slider item, form field, …"""

    key: str
    owner: Question  # the definition's (top-level) question
    source: Question  # the question whose choices/answers a cell refers to (side-by-side: its column)
    kind: str  # single, multi, text, number, rank
    text: str
    options: tuple[Choice, ...] = ()  # what a cell's value names: choices, a matrix's scale, rank items
    row: Choice | None = None
    renamable: bool = True  # take the name of the column its value slot matched


@dataclass(frozen=True)
class Slot:
    """One column a target can have: its candidate names, its ImportId objects and what it stands for."""

    target: str
    role: str  # value | choice | text | item | cell | page | derived
    names: tuple[str, ...]
    import_ids: tuple[tuple[str, str | None], ...]
    choice: str | None = None  # the choice, item or scale point the column stands for
    required: bool = True
    label: str = ""


@dataclass
class Alternative:
    targets: list[Target]
    slots: list[Slot]


@dataclass
class Unit:
    """What is matched as a whole: a question (or one side-by-side column) with its naming alternatives."""

    owner: Question
    alternatives: list[Alternative]
    label: str = ""  # how a missing unit is named: the export tag (side-by-side column: Q9#1)

    def __post_init__(self) -> None:
        self.label = self.label or self.owner.tag

    def names(self) -> set[str]:
        return {n for a in self.alternatives for s in a.slots for n in s.names}


@dataclass
class ColumnMap:
    """The outcome: targets in survey order, the slot of every claimed column, and what did not match."""

    targets: list[Target] = field(default_factory=list)
    slots: dict[str, Slot] = field(default_factory=dict)  # column name -> slot
    columns: dict[str, list[str]] = field(default_factory=dict)  # target key -> its column names
    missing: list[str] = field(default_factory=list)  # definition side: questions / columns not in the export
    unexpected: list[str] = field(default_factory=list)  # export side: question columns not in the definition
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # question tag -> its raw-only columns

    def mismatch(self, definition_name: str, export_name: str) -> str | None:
        """One line naming the ids missing on either side, or None when the two match."""
        if not self.missing and not self.unexpected:
            return None
        parts = []
        if self.missing:
            parts.append(f"in the definition but not in the export: {_shown(self.missing)}")
        if self.unexpected:
            parts.append(f"in the export but not in the definition: {_shown(self.unexpected)}")
            if any(LOOP_COLUMN.match(c) for c in self.unexpected):
                parts.append("Loop & Merge columns (1_Q5, …) are not read by this import yet")
        return f"definition {definition_name} does not match {export_name}: {'; '.join(parts)}"


def _shown(items: list[str]) -> str:
    head = ", ".join(items[:SHOWN])
    return head + (f" … ({len(items) - SHOWN} more)" if len(items) > SHOWN else "")


def _names(*candidates: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in candidates if c))


def _row_tag(row: Choice, tag: str) -> str | None:
    """A row's own export tag, unless it is a stale default (`Q15_3` after the question was renamed)."""
    if not row.export_tag:
        return None
    stale = re.fullmatch(r"(Q\d+(?:\.\d+)?)_" + re.escape(row.id), row.export_tag)
    return None if stale and stale.group(1) != tag else row.export_tag


def _texts(owner: Question, q: Question, target: str, items: tuple[Choice, ...], base: str) -> list[Slot]:
    """`<base>_<choice id>_TEXT` columns of text-entry choices (some exports use the recode value)."""
    return [
        Slot(
            target,
            "text",
            _names(f"{base}_{c.id}_TEXT", f"{base}_{c.recode}_TEXT" if c.recode else None),
            ((f"{q.qid}_{c.id}_TEXT", None),),
            choice=c.id,
        )
        for c in items
        if c.text_entry
    ]


def _choice_units(q: Question) -> list[Unit]:
    kind = "multi" if q.qtype == "multi" else "single"
    target = Target(q.tag, q, q, kind, q.text, q.choices)
    texts = _texts(q, q, q.tag, q.choices, q.tag)
    extra = []
    if q.source_type.startswith("MC/NPS"):
        extra.append(
            Slot(
                q.tag,
                "derived",
                (f"{q.tag}_NPS_GROUP",),
                ((f"{q.qid}_NPS_GROUP", None),),
                required=False,
                label="NPS group",
            )
        )
    joined = Alternative([target], [Slot(q.tag, "value", (q.tag,), ((q.qid, None),)), *texts, *extra])
    if kind == "single":
        return [Unit(q, [joined])]
    split = [
        Slot(
            q.tag,
            "choice",
            _names(c.export_tag, f"{q.tag}_{c.id}", f"{q.tag}_{c.recode}" if c.recode else None),
            ((q.qid, c.id), (f"{q.qid}_{c.id}", None)),
            choice=c.id,
        )
        for c in q.choices
    ]
    target = Target(q.tag, q, q, kind, q.text, q.choices, renamable=False)
    return [Unit(q, [joined, Alternative([target], [*split, *texts, *extra])])]


def _matrix_unit(owner: Question, q: Question, prefix: str) -> Unit:
    """A matrix (or one side-by-side column): one target per row, sharing the scale."""
    row_naming = ("position", "id")
    answer_naming = ("position", "id") if q.mode in ("multi", "text") else ("-",)
    splits = (False, True) if q.mode == "multi" else (q.mode == "text",)
    alternatives = []
    for rows_by, answers_by, split in itertools.product(row_naming, answer_naming, splits):
        targets, slots = [], []
        for pos, row in enumerate(q.choices, start=1):
            base = _row_tag(row, q.tag) or f"{q.tag}_{pos if rows_by == 'position' else row.id}"
            kind = {"single": "single", "multi": "multi", "text": "text"}[q.mode]
            text = f"{prefix} - {row.text}" if prefix else row.text
            targets.append(Target(base, owner, q, kind, text, q.answers, row=row, renamable=not split))
            if not split:
                slots.append(Slot(base, "value", (base,), ((f"{q.qid}_{row.id}", None),)))
            else:
                for apos, answer in enumerate(q.answers, start=1):
                    name = f"{base}_{apos if answers_by == 'position' else answer.id}"
                    imports = ((f"{q.qid}_{row.id}_{answer.id}", None), (f"{q.qid}_{row.id}", answer.id))
                    role = "cell" if q.mode == "text" else "choice"
                    slots.append(Slot(base, role, (name,), imports, choice=answer.id))
            if row.text_entry:
                slots.append(Slot(base, "text", (f"{base}_TEXT",), ((f"{q.qid}_{row.id}_TEXT", None),), row.id))
        alternatives.append(Alternative(targets, slots))
    return Unit(owner, alternatives, label=q.tag)


def _item_units(q: Question) -> list[Unit]:
    """Sliders, constant sum and form fields (one target per item) and rank order (one target)."""
    alternatives = []
    for naming in ("id", "position"):
        targets, slots = [], []
        for pos, item in enumerate(q.choices, start=1):
            name = f"{q.tag}_{item.id if naming == 'id' else pos}"
            imports = ((f"{q.qid}_{item.id}", None),)
            if q.qtype == "rank":
                slots.append(Slot(q.tag, "item", (name,), imports, choice=item.id))
            else:
                kind = "text" if q.qtype == "form" else "number"
                targets.append(Target(name, q, q, kind, f"{q.text} - {item.text}", (), row=item))
                slots.append(Slot(name, "value", (name,), imports))
                slots.extend(_texts(q, q, name, (item,), q.tag))
        if q.qtype == "rank":
            targets = [Target(q.tag, q, q, "rank", q.text, q.choices, renamable=False)]
            slots.extend(_texts(q, q, q.tag, q.choices, q.tag))
        alternatives.append(Alternative(targets, slots))
    return [Unit(q, alternatives)]


def _page_unit(q: Question) -> list[Unit]:
    parts = TIMING_PARTS if q.qtype == "timing" else META_PARTS
    slots = [
        Slot(q.tag, "page", (f"{q.tag}_{label}",), ((f"{q.qid}_{suffix}", None),), required=False)
        for label, suffix in parts
    ]
    return [Unit(q, [Alternative([], slots)])]


def units(definition: SurveyDefinition) -> list[Unit]:
    """Every question's naming alternatives, in survey order."""
    out: list[Unit] = []
    for q in definition.questions:
        if q.qtype in ("single", "multi"):
            out.extend(_choice_units(q))
        elif q.qtype == "matrix":
            out.append(_matrix_unit(q, q, q.text))
        elif q.qtype == "side-by-side":
            out.extend(_matrix_unit(q, column, f"{q.text} - {column.text}") for column in q.columns)
        elif q.qtype == "text":
            target = Target(q.tag, q, q, "text", q.text)
            slot = Slot(q.tag, "value", _names(q.tag, f"{q.tag}_TEXT"), ((f"{q.qid}_TEXT", None), (q.qid, None)))
            out.append(Unit(q, [Alternative([target], [slot])]))
        elif q.qtype in ("form", "slider", "constant-sum", "rank"):
            out.extend(_item_units(q))
        elif q.qtype in ("timing", "meta"):
            out.extend(_page_unit(q))
    return out


def question_names(definition: SurveyDefinition) -> set[str]:
    """Every column name the definition's questions can have (to find where the questions start)."""
    return {n for unit in units(definition) for n in unit.names()}


def _find(
    slot: Slot, export: QualtricsExport, by_name: dict[str, ExportColumn], by_import: _ByImport
) -> ExportColumn | None:
    by_names = next((by_name[n] for n in slot.names if n in by_name), None)
    if not export.has_import_ids:
        return by_names
    found = next((by_import[key] for key in slot.import_ids if key in by_import), None)
    if found is None and by_names is not None and _owner(by_names.import_id) == _owner(slot.import_ids[0][0]):
        return by_names  # an ImportId suffix not foreseen here: the name decides, within the same question only
    return found


def _owner(import_id: str | None) -> str | None:
    """The question (or side-by-side column) an ImportId belongs to: QID5 of QID5_1, QID9#1 of QID9#1_2."""
    match = OWNER.match(import_id or "")
    return match.group(1) if match else None


def match_columns(definition: SurveyDefinition, export: QualtricsExport, not_questions: set[str]) -> ColumnMap:
    """Claim the export's columns for the definition's questions; list what is missing on either side.

    `not_questions` are the columns the layout recognised as metadata, display order, Text iQ or
    embedded data: never claimed, never reported as unexpected.
    """
    result = ColumnMap()
    by_name = {c.name: c for c in export.columns if c.name not in not_questions}
    by_import: _ByImport = {}
    for c in export.columns:
        if c.import_id is not None and c.name not in not_questions:
            by_import.setdefault((c.import_id, c.choice_id), c)
    claimed: dict[str, Slot] = {}
    for unit in units(definition):
        best: tuple[int, Alternative, dict[Slot, ExportColumn]] | None = None
        for alternative in unit.alternatives:
            found: dict[Slot, ExportColumn] = {}
            for slot in alternative.slots:
                column = _find(slot, export, by_name, by_import)
                if column is not None and column.name not in claimed:
                    found[slot] = column
            score = len(found)
            if best is None or score > best[0]:
                best = (score, alternative, found)
        assert best is not None
        _, alternative, found = best
        required = [s for s in alternative.slots if s.required]
        if required and not any(s in found for s in required):
            result.missing.append(unit.label)
            continue
        result.missing.extend(s.names[0] for s in required if s not in found)
        renamed: dict[str, str] = {}
        for slot, column in found.items():
            claimed[column.name] = slot
        for target in alternative.targets:
            value = next((c for s, c in found.items() if s.target == target.key and s.role == "value"), None)
            if target.renamable and value is not None and value.name != target.key:
                renamed[target.key] = value.name
        for slot, column in found.items():
            key = renamed.get(slot.target, slot.target)
            result.slots[column.name] = replace(slot, target=key)
            result.columns.setdefault(key, []).append(column.name)
        for target in alternative.targets:
            target.key = renamed.get(target.key, target.key)
            if target.key in result.columns:
                result.targets.append(target)
    _unclaimed(definition, export, claimed | dict.fromkeys(not_questions), result)
    return result


def _unclaimed(definition: SurveyDefinition, export: QualtricsExport, done: dict[str, object], out: ColumnMap) -> None:
    """Question-like columns the definition does not explain; raw-only columns of unsupported questions."""
    unsupported = {q.qid: q.tag for q in definition.questions if q.qtype == "unsupported"}
    tags = {q.tag for q in definition.questions}
    for column in export.columns:
        if column.name in done or column.name in definition.embedded_data:
            continue
        imp = column.import_id or ""
        base = QUESTION_IMPORT_ID.match(imp) if export.has_import_ids else None
        owner = None
        if base is not None:
            owner = unsupported.get(base["qid"])
        else:
            owner = next(
                (tag for qid, tag in unsupported.items() if column.name == tag or column.name.startswith(f"{tag}_")),
                None,
            )
        if owner is not None:
            out.unsupported.setdefault(owner, []).append(column.name)
        elif base is not None or (not export.has_import_ids and _question_like(column.name, tags)):
            out.unexpected.append(column.name)


def _question_like(name: str, tags: set[str]) -> bool:
    return bool(QID_PATTERN.match(name)) or any(name.startswith(f"{t}_") or name.startswith(f"{t}#") for t in tags)
