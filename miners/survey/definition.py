"""A survey's definition as an import needs it: questions in survey order with their type, plain text,
choices (recode values, text entries), matrix scales, side-by-side columns, blocks and display logic.

It is read from Qualtrics' survey file by `miners.survey.qsf`, stored with the survey (versioned by the
hash of this normalized form) and rebuilt from the stored JSON by `SurveyDefinition.from_json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Any

from miners.survey.reader import ExportError

#: What each question type is called here (`qtype` of the stored questions).
QTYPES = ("single", "multi", "matrix", "text", "form", "slider", "constant-sum", "rank", "side-by-side")


class DefinitionError(ExportError):
    """The --definition file is not a usable Qualtrics survey file; the message names the file and the element."""


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment: tags dropped, <br> and block ends as spaces, entities decoded."""

    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def plain_text(html: Any) -> str:
    """Question or choice text without HTML: tags dropped, entities decoded, whitespace collapsed."""
    if html is None or html is False:
        return ""
    source = str(html)
    if "<" not in source and "&" not in source:
        return " ".join(source.split())
    parser = _TextOnly()
    parser.feed(source)
    parser.close()
    return " ".join(unescape("".join(parser.parts)).replace("\xa0", " ").split())


@dataclass(frozen=True)
class Choice:
    """A choice, matrix statement (row), scale point (answer), slider item or form field."""

    id: str
    text: str
    recode: str | None = None
    export_tag: str | None = None
    text_entry: bool = False
    exclusive: bool = False

    @property
    def code(self) -> str:
        """What a numeric-values export writes for this choice: its recode value, else its id."""
        return self.recode if self.recode not in (None, "") else self.id


@dataclass(frozen=True)
class Question:
    """One question of the definition as the export lays it out."""

    qid: str  # QuestionID, e.g. QID5 (side-by-side columns: QID5#1)
    tag: str  # DataExportTag, e.g. Q5 (side-by-side columns: Q5#1)
    qtype: str  # one of QTYPES, or "descriptive", "timing", "meta", "unsupported"
    source_type: str  # QuestionType/Selector[/SubSelector] as in the file
    text: str
    mode: str = ""  # matrix rows: single, multi or text; form, slider …: the cell reading
    choices: tuple[Choice, ...] = ()  # MC choices, matrix rows, slider/rank items, form fields, SBS rows
    answers: tuple[Choice, ...] = ()  # matrix scale points / side-by-side column choices
    columns: tuple[Question, ...] = ()  # side-by-side: one matrix-like question per column
    block: str | None = None
    display_logic: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Question:
        return cls(
            **{
                **data,
                "choices": tuple(Choice(**c) for c in data.get("choices", ())),
                "answers": tuple(Choice(**c) for c in data.get("answers", ())),
                "columns": tuple(cls.from_json(c) for c in data.get("columns", ())),
            }
        )


@dataclass(frozen=True)
class Block:
    id: str
    description: str
    questions: tuple[str, ...]  # QuestionIDs in block order


@dataclass(frozen=True)
class SurveyDefinition:
    """The normalized definition: questions in survey order (flow, then block order), blocks, embedded data."""

    survey_id: str | None
    name: str | None
    language: str | None
    questions: tuple[Question, ...]
    blocks: tuple[Block, ...] = ()
    embedded_data: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def answered(self) -> list[Question]:
        """Questions that hold respondents' answers (not descriptive text, timing or meta info)."""
        return [q for q in self.questions if q.qtype in QTYPES]

    def to_json(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "name": self.name,
            "language": self.language,
            "questions": [q.to_json() for q in self.questions],
            "blocks": [asdict(b) for b in self.blocks],
            "embedded_data": list(self.embedded_data),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SurveyDefinition:
        return cls(
            survey_id=data.get("survey_id"),
            name=data.get("name"),
            language=data.get("language"),
            questions=tuple(Question.from_json(q) for q in data.get("questions", ())),
            blocks=tuple(Block(b["id"], b["description"], tuple(b["questions"])) for b in data.get("blocks", ())),
            embedded_data=tuple(data.get("embedded_data", ())),
        )

    def content_hash(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
