"""Read Qualtrics' survey file (.qsf, JSON) into a `SurveyDefinition`; every problem is one line naming the file.

A .qsf holds `SurveyEntry` (id, name, language) and `SurveyElements`: `SQ` elements are questions (their
`Payload` has QuestionType/Selector/SubSelector, QuestionText in HTML, DataExportTag, Choices with
RecodeValues and ChoiceDataExportTags, Answers for matrix scales, AdditionalQuestions for side-by-side
columns, DisplayLogic), `BL` is the list of blocks (the `Trash` block holds deleted questions) and `FL` the
survey flow that orders the blocks (through branches, randomizers and groups) and declares embedded data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from miners.survey.definition import (
    QTYPES,
    Block,
    Choice,
    DefinitionError,
    Question,
    SurveyDefinition,
    plain_text,
)

SINGLE_SELECTORS = ("SAVR", "SAHR", "SACOL", "DL", "SB", "NPS")
MULTI_SELECTORS = ("MAVR", "MAHR", "MACOL", "MSB")
LIKERT_SINGLE = ("SingleAnswer", "SACH", "SACV", "DL", "DND", "", "None")
#: Question types that never produce an answer column.
NO_DATA_TYPES = ("DB", "Captcha")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _mapping(value: Any) -> dict[str, Any]:
    """Qualtrics writes id-keyed collections as objects, and (NPS choices, some blocks) as lists."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _ordered(items: dict[str, Any], order: Any) -> list[str]:
    """Ids in the file's order list (ChoiceOrder/AnswerOrder), then any the list forgot, in key order."""
    ordered = [str(x) for x in order] if isinstance(order, list) else []
    keys = [k for k in ordered if k in items]
    return keys + [k for k in items if k not in keys]


def _choices(payload: dict[str, Any], key: str, order_key: str, recodes: dict[str, Any]) -> tuple[Choice, ...]:
    raw = _mapping(payload.get(key))
    tags = _mapping(payload.get("ChoiceDataExportTags")) if key == "Choices" else {}
    out = []
    for cid in _ordered(raw, payload.get(order_key)):
        body = raw[cid] if isinstance(raw[cid], dict) else {"Display": raw[cid]}
        display = body.get("Display", body.get("display", ""))
        recode = recodes.get(cid)
        tag = tags.get(cid)
        out.append(
            Choice(
                id=cid,
                text=plain_text(display) or cid,
                recode=None if recode in (None, "") else str(recode),
                export_tag=str(tag) if tag not in (None, "", False) else None,
                text_entry=_truthy(body.get("TextEntry", False)),
                exclusive=_truthy(body.get("ExclusiveAnswer", False)),
            )
        )
    return tuple(out)


_OPERATORS = {
    "Selected": "is selected",
    "NotSelected": "is not selected",
    "Displayed": "is displayed",
    "NotDisplayed": "is not displayed",
    "EqualTo": "=",
    "NotEqualTo": "≠",
    "GreaterThan": ">",
    "LessThan": "<",
    "Empty": "is empty",
    "NotEmpty": "is not empty",
    "Contains": "contains",
}


def _logic_note(logic: Any) -> str | None:
    """Display logic as one readable line (its conditions' own descriptions, HTML stripped)."""
    if not isinstance(logic, dict):
        return None
    parts: list[str] = []
    for key in sorted((k for k in logic if k.isdigit()), key=int):
        group = logic[key]
        if not isinstance(group, dict):
            continue
        for ckey in sorted((k for k in group if k.isdigit()), key=int):
            cond = group[ckey]
            if not isinstance(cond, dict):
                continue
            text = plain_text(cond.get("Description"))
            if not text:
                left = str(cond.get("LeftOperand") or cond.get("QuestionID") or "?").removeprefix("q://")
                op = _OPERATORS.get(str(cond.get("Operator")), str(cond.get("Operator") or ""))
                right = cond.get("RightOperand")
                text = " ".join(x for x in (left, op, "" if right in (None, "") else str(right)) if x)
                conj = cond.get("Conjuction") or cond.get("Conjunction")
                if conj and parts:
                    text = f"{conj} {text}"
            parts.append(text)
    return "; ".join(parts) or None


def _question(payload: dict[str, Any], where: str) -> Question:
    """One SQ payload (or a side-by-side column) as a normalized Question."""
    qid = str(payload.get("QuestionID") or "")
    qtype = str(payload.get("QuestionType") or "")
    selector = str(payload.get("Selector") or "")
    sub = str(payload.get("SubSelector") or "")
    tag = str(payload.get("DataExportTag") or qid)
    source_type = "/".join(x for x in (qtype, selector, sub) if x)
    text = plain_text(payload.get("QuestionText")) or plain_text(payload.get("QuestionDescription")) or tag
    recodes = _mapping(payload.get("RecodeValues"))
    logic = _logic_note(payload.get("DisplayLogic"))
    common: dict[str, Any] = {"qid": qid, "tag": tag, "source_type": source_type, "text": text, "display_logic": logic}

    def choices(recoded: bool = True) -> tuple[Choice, ...]:
        return _choices(payload, "Choices", "ChoiceOrder", recodes if recoded else {})

    if qtype == "MC":
        multi = selector in MULTI_SELECTORS or (selector not in SINGLE_SELECTORS and sub == "MultipleAnswer")
        return Question(**common, qtype="multi" if multi else "single", choices=choices())
    if qtype == "Matrix":
        if selector == "Likert" or selector == "Bipolar":
            mode = "multi" if sub == "MultipleAnswer" else "single"
            if selector == "Likert" and sub not in (*LIKERT_SINGLE, "MultipleAnswer"):
                return Question(**common, qtype="unsupported")
        elif selector == "TE":
            mode = "text"
        else:  # rank order, constant sum, MaxDiff, profile matrices: not modelled
            return Question(**common, qtype="unsupported")
        answers = _choices(payload, "Answers", "AnswerOrder", recodes)
        return Question(**common, qtype="matrix", mode=mode, choices=choices(recoded=False), answers=answers)
    if qtype == "TE":
        if selector == "FORM":
            return Question(**common, qtype="form", mode="text", choices=choices())
        return Question(**common, qtype="text", mode="text")
    if qtype == "Slider":
        return Question(**common, qtype="slider", mode="number", choices=choices())
    if qtype == "CS":
        return Question(**common, qtype="constant-sum", mode="number", choices=choices())
    if qtype == "RO":
        return Question(**common, qtype="rank", mode="rank", choices=choices())
    if qtype == "SBS":
        rows = choices(recoded=False)
        shared_answers = _mapping(payload.get("Answers"))
        cols = []
        columns = _mapping(payload.get("AdditionalQuestions"))
        for key, sub_payload in sorted(columns.items(), key=lambda kv: _numeric_first(kv[0])):
            if not isinstance(sub_payload, dict):
                continue
            body = dict(sub_payload)
            body["QuestionID"] = f"{qid}#{key}"  # how exports name a column's ImportIds: QID9#1_…
            body.setdefault("QuestionType", "Matrix")
            body["DataExportTag"] = f"{tag}#{key}"
            if not body.get("Choices"):
                body["Choices"], body["ChoiceOrder"] = payload.get("Choices"), payload.get("ChoiceOrder")
            if not body.get("Answers") and shared_answers:
                body["Answers"], body["AnswerOrder"] = payload.get("Answers"), payload.get("AnswerOrder")
            column = _question(body, f"{where} column {key}")
            if column.qtype != "matrix":
                return Question(**common, qtype="unsupported")
            cols.append(column)
        if not cols:
            raise DefinitionError(f"{where} ({tag}): side-by-side question without AdditionalQuestions")
        return Question(**common, qtype="side-by-side", choices=rows, columns=tuple(cols))
    if qtype in NO_DATA_TYPES:
        return Question(**common, qtype="descriptive")
    if qtype == "Timing":
        return Question(**common, qtype="timing")
    if qtype == "Meta":
        return Question(**common, qtype="meta")
    return Question(**common, qtype="unsupported")


def _numeric_first(key: str) -> tuple[bool, int, str]:
    return (not key.isdigit(), int(key) if key.isdigit() else 0, key)


def _blocks(payload: Any) -> list[dict[str, Any]]:
    """The BL payload: a list of blocks, an id-keyed object of blocks, or (old files) one block."""
    if isinstance(payload, dict) and "BlockElements" in payload:
        return [payload]
    return [b for b in _mapping(payload).values() if isinstance(b, dict)]


def _flow_blocks(flow: Any, out: list[str], embedded: list[str]) -> None:
    """Block ids in flow order (branches, randomizers and groups included), and embedded-data fields."""
    if isinstance(flow, dict):
        if flow.get("Type") in ("Block", "Standard", "Default") and flow.get("ID"):
            out.append(str(flow["ID"]))
        if flow.get("Type") == "EmbeddedData":
            for item in flow.get("EmbeddedData") or []:
                if isinstance(item, dict) and item.get("Field"):
                    embedded.append(str(item["Field"]))
        _flow_blocks(flow.get("Flow"), out, embedded)
    elif isinstance(flow, list):
        for node in flow:
            _flow_blocks(node, out, embedded)


def parse_definition(data: Any, source: str = "<definition>") -> SurveyDefinition:
    """Check a loaded .qsf document and normalize it; raises DefinitionError naming `source` and the element."""
    if not isinstance(data, dict) or "SurveyElements" not in data:
        raise DefinitionError(f"{source}: not a Qualtrics survey file (.qsf): no SurveyElements at the top")
    elements = data["SurveyElements"]
    elements = list(elements.values()) if isinstance(elements, dict) else elements
    if not isinstance(elements, list):
        raise DefinitionError(f"{source}: SurveyElements must be a list of elements")
    found = data.get("SurveyEntry")
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    payloads: dict[str, dict[str, Any]] = {}
    blocks: list[dict[str, Any]] = []
    flow: Any = None
    for i, element in enumerate(elements):
        if not isinstance(element, dict):
            raise DefinitionError(f"{source}: SurveyElements[{i}] is not an object")
        kind = element.get("Element")
        payload = element.get("Payload")
        if kind == "SQ":
            if not isinstance(payload, dict):
                raise DefinitionError(f"{source}: SurveyElements[{i}] (SQ): Payload is not an object")
            qid = str(payload.get("QuestionID") or element.get("PrimaryAttribute") or "")
            if not qid:
                raise DefinitionError(f"{source}: SurveyElements[{i}] (SQ): no QuestionID")
            if qid in payloads:
                raise DefinitionError(f"{source}: question {qid} is defined twice")
            payloads[qid] = {**payload, "QuestionID": qid}
        elif kind == "BL":
            blocks.extend(_blocks(payload))
        elif kind == "FL":
            flow = payload
    if not payloads:
        raise DefinitionError(f"{source}: no questions (no SQ elements) in the survey file")
    order: list[str] = []
    embedded: list[str] = []
    _flow_blocks(flow, order, embedded)
    by_id = {str(b.get("ID")): b for b in blocks if b.get("ID")}
    live = [b for b in blocks if b.get("Type") != "Trash"]
    ordered = [by_id[bid] for bid in dict.fromkeys(order) if bid in by_id and by_id[bid].get("Type") != "Trash"]
    ordered += [b for b in live if b not in ordered]
    notes: list[str] = []
    if flow is None:
        notes.append("no survey flow (FL element): blocks are taken in file order")
    seen: set[str] = set()
    questions: list[Question] = []
    block_list: list[Block] = []
    for block in ordered:
        elements_ = block.get("BlockElements") or []
        ids = [str(e.get("QuestionID")) for e in elements_ if isinstance(e, dict) and e.get("Type") == "Question"]
        description = plain_text(block.get("Description")) or str(block.get("ID"))
        block_list.append(Block(str(block.get("ID")), description, tuple(ids)))
        for qid in ids:
            if qid in seen or qid not in payloads:
                if qid not in payloads:
                    notes.append(f"block {description!r} lists {qid}, which the file does not define")
                continue
            seen.add(qid)
            question = _question(payloads[qid], f"{source}: {qid}")
            questions.append(replace(question, block=description))
    trashed = {
        str(e.get("QuestionID")) for b in blocks if b.get("Type") == "Trash" for e in b.get("BlockElements") or []
    }
    if not blocks:  # a file without blocks: every question, in file order
        questions = [_question(payloads[qid], f"{source}: {qid}") for qid in payloads]
        notes.append("no blocks (BL element): questions are taken in file order")
    else:
        orphans = [qid for qid in payloads if qid not in seen and qid not in trashed]
        if orphans:
            notes.append(f"{len(orphans)} question(s) in no block (not shown to respondents): {', '.join(orphans)}")
    if not any(q.qtype in QTYPES for q in questions):
        raise DefinitionError(f"{source}: no question that collects answers (only descriptive text, timing, …)")
    language = entry.get("SurveyLanguage")
    return SurveyDefinition(
        survey_id=str(entry["SurveyID"]) if entry.get("SurveyID") else None,
        name=plain_text(entry.get("SurveyName")) or None,
        language=str(language).upper() if language else None,
        questions=tuple(questions),
        blocks=tuple(block_list),
        embedded_data=tuple(dict.fromkeys(embedded)),
        notes=tuple(notes),
    )


def read_definition(path: str | Path) -> SurveyDefinition:
    """Read a .qsf file; every problem is one DefinitionError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise DefinitionError(f"{path}: is a directory; give the survey file (.qsf) inside it")
    if not path.is_file():
        raise DefinitionError(f"{path}: no such survey definition file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            f"{path.name}: not UTF-8 text at byte {exc.start}: a Qualtrics survey file (.qsf) is JSON"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            f"{path.name}: not JSON at line {exc.lineno} column {exc.colno} ({exc.msg}): a .qsf file is JSON"
        ) from exc
    except RecursionError as exc:
        raise DefinitionError(f"{path.name}: JSON nested too deeply to be a survey file") from exc
    return parse_definition(data, path.name)
