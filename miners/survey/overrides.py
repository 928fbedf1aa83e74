"""Optional question overrides (YAML/JSON): force a question's kind, give its known choices, drop artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miners.survey.reader import ExportError

KINDS = ("single", "multi", "text")
#: Fragments Qualtrics leaks into selected-choice cells that are not choices (kept in `raw`, not answers).
DEFAULT_IGNORE = ("AnswerDisplayOrder",)


@dataclass(frozen=True)
class QuestionOverride:
    """What a researcher states about one question; `closed` makes any other fragment an unknown one."""

    kind: str | None = None
    choices: tuple[str, ...] = ()
    closed: bool = False


@dataclass(frozen=True)
class Overrides:
    """All overrides of one import (empty by default: everything is inferred from the export)."""

    questions: dict[str, QuestionOverride] = field(default_factory=dict)
    ignore_fragments: tuple[str, ...] = DEFAULT_IGNORE


def load_overrides(path: str | Path | None) -> Overrides:
    """Read an overrides file; a wrong key or value is one error naming the file and the key."""
    if path is None:
        return Overrides()
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such overrides file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ExportError(f"{path.name}: cannot parse overrides ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise ExportError(f"{path.name}: cannot parse overrides ({type(exc).__name__})") from exc
    if data is None:
        return Overrides()
    if not isinstance(data, dict):
        raise ExportError(f"{path.name}: overrides must be a mapping with 'questions' and/or 'ignore_fragments'")
    unknown = set(data) - {"questions", "ignore_fragments"}
    if unknown:
        raise ExportError(f"{path.name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    ignore = data.get("ignore_fragments", list(DEFAULT_IGNORE))
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        raise ExportError(f"{path.name}: ignore_fragments must be a list of strings")
    questions: dict[str, QuestionOverride] = {}
    for qid, spec in (data.get("questions") or {}).items():
        if not isinstance(spec, dict):
            raise ExportError(f"{path.name}: questions.{qid} must be a mapping (kind, choices, closed)")
        bad = set(spec) - {"kind", "choices", "closed"}
        if bad:
            raise ExportError(f"{path.name}: questions.{qid}: unknown key(s) {', '.join(sorted(map(str, bad)))}")
        kind = spec.get("kind")
        if kind is not None and kind not in KINDS:
            raise ExportError(f"{path.name}: questions.{qid}.kind must be one of {', '.join(KINDS)}, not {kind!r}")
        choices = spec.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
            raise ExportError(f"{path.name}: questions.{qid}.choices must be a list of non-empty strings")
        questions[str(qid)] = QuestionOverride(
            kind=kind, choices=tuple(c.strip() for c in choices), closed=bool(spec.get("closed", False))
        )
    return Overrides(questions=questions, ignore_fragments=tuple(ignore))
