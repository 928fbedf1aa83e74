"""Label Studio side: the labeling config generated from a codebook and the check of annotation results (the
HTTP side lives in `labeling.client`)."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from db.queries.issues import CommentRow
from labeling.codebook import CodebookSpec, DimensionSpec

NOTE = "note"
OBJECT = "body"
#: Suffix of a multi-label dimension's free-text control where coders propose codes the codebook lacks.
PROPOSE = "_new"


def propose_control(dim: DimensionSpec) -> str:
    """The name of the TextArea in which coders propose new codes for a multi-label dimension (open coding)."""
    return f"{dim.key}{PROPOSE}"


def choice_value(code: int, label: str) -> str:
    """What a coder sees and what LS stores: `2 Incompatibility` (commas would split `whenChoiceValue`)."""
    return f"{code} {label}".replace(",", ";")


def _dimension_xml(dim: DimensionSpec, spec: CodebookSpec) -> str:
    kind = 'choice="multiple"' if dim.multi else 'choice="single-radio"'
    attrs = [f"name={quoteattr(dim.key)}", f"toName={quoteattr(OBJECT)}", kind, 'showInline="false"']
    visible = ""
    if dim.required:
        attrs += ['required="true"', f"requiredMessage={quoteattr(f'{dim.key} is required')}"]
    if dim.required_when:
        # LS conditions on one tag: the first condition drives visibility (question and choices); pull checks all
        other, codes = next(iter(dim.required_when.items()))
        values = ",".join(choice_value(c, spec.dimension(other).codes[c].label) for c in codes)
        visible = f' visibleWhen="choice-selected" whenTagName={quoteattr(other)} whenChoiceValue={quoteattr(values)}'
    question = dim.question or dim.key.replace("_", " ")
    lines = [
        f'  <View style="margin-top: 1em"{visible}>',
        f'    <Header value={quoteattr(f"{dim.key}: {question}")} size="5"/>',
        f"    <Choices {' '.join(attrs)}{visible}>",
    ]
    for code in sorted(dim.codes.values(), key=lambda c: c.code):
        hint = code.description or code.label
        if code.unused:
            hint += " (not used in the original study)"
        lines.append(f"      <Choice value={quoteattr(choice_value(code.code, code.label))} hint={quoteattr(hint)}/>")
    lines.append("    </Choices>")
    if dim.multi:
        header = f"New {dim.key.replace('_', ' ')} (optional, one per line): proposals for the next codebook version"
        lines += [
            f'    <Header value={quoteattr(header)} size="6"/>',
            f"    <TextArea name={quoteattr(propose_control(dim))} toName={quoteattr(OBJECT)} "
            'rows="2" editable="true"/>',
        ]
    lines.append("  </View>")
    return "\n".join(lines)


DISCUSSION = "discussion"
_FENCE = re.compile(r"^\s*(```|~~~)")
_PRE = "white-space: pre-wrap; font-family: monospace; background: #f6f8fa; padding: 0.4em; margin: 0.3em 0"


def _body_html(text: str) -> str:
    """A comment's Markdown as safe HTML: fenced code and tracebacks monospace, line breaks kept, nothing else
    interpreted (no HTML from GitHub reaches the page unescaped)."""
    out: list[str] = []
    block: list[str] = []
    mode = "text"  # text | fence | traceback

    def flush() -> None:
        if block:
            style = _PRE if mode != "text" else "white-space: pre-wrap"
            out.append(f'<div style="{style}">{html.escape(chr(10).join(block))}</div>')
            block.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if mode == "fence":
            if _FENCE.match(line):
                flush()
                mode = "text"
            else:
                block.append(line)
        elif _FENCE.match(line):
            flush()
            mode = "fence"
        elif line.startswith("Traceback (most recent call last)") and mode == "text":
            flush()
            mode = "traceback"
            block.append(line)
        elif mode == "traceback" and not line.strip():
            flush()
            mode = "text"
            block.append(line)
        else:
            block.append(line)
    flush()
    return "".join(out)


def discussion_html(comments: Sequence[CommentRow]) -> str:
    """The issue's comments in order as one HTML block for Label Studio's HyperText: author, date (edited,
    deleted marked), text with code blocks and tracebacks readable."""
    if not comments:
        return "<p><i>No comments mined for this issue.</i></p>"
    parts = []
    for n, c in enumerate(comments, 1):
        when = c.created_at.strftime("%Y-%m-%d %H:%M UTC") if c.created_at else "date unknown"
        notes = []
        if c.created_at and c.updated_at and c.updated_at > c.created_at:
            notes.append(f"edited {c.updated_at.strftime('%Y-%m-%d')}")
        if c.deleted:
            notes.append("deleted on GitHub")
        note = f" <i>({html.escape(', '.join(notes))})</i>" if notes else ""
        head = f"<div><b>#{n} {html.escape(c.author or 'unknown')}</b> · {when}{note}</div>"
        parts.append(
            f'<div style="border-top: 1px solid #ddd; padding: 0.4em 0">{head}{_body_html(c.body or "")}</div>'
        )
    return "".join(parts)


def labeling_config(spec: CodebookSpec, discussion: bool = True) -> str:
    """One choice control per dimension (single, or checkboxes for multi-label ones with a box for proposed new
    codes; descriptions as hints), conditional ones shown only when they apply, a free-text note, and the item:
    an issue's title, labels, link, body and (`discussion`) its comments, or a survey question's text and the
    answer (same fields)."""
    parts = [
        "<View>",
        '  <Header value="$title"/>',
        '  <View style="display: flex; gap: 1em">',
        '    <Text name="labels" value="$labels"/>',
        '    <HyperText name="link" value="$link" inline="true"/>',
        "  </View>",
        '  <View style="max-height: 420px; overflow-y: auto; border: 1px solid #ddd; padding: 0.5em">',
        f'    <Text name="{OBJECT}" value="$body"/>',
        "  </View>",
    ]
    if discussion:
        parts += [
            '  <Header value="Discussion (oldest first)" size="5"/>',
            '  <View style="max-height: 520px; overflow-y: auto; border: 1px solid #ddd; padding: 0.5em">',
            f'    <HyperText name="{DISCUSSION}" value="${DISCUSSION}" inline="true"/>',
            "  </View>",
        ]
    parts += [_dimension_xml(dim, spec) for dim in spec.dimensions]
    parts += [
        '  <Header value="Note (optional): why this coding, doubts, codebook gaps" size="5"/>',
        f'  <TextArea name="{NOTE}" toName="{OBJECT}" rows="3" maxSubmissions="1" editable="true"/>',
        "</View>",
    ]
    return "\n".join(parts)


def instructions(spec: CodebookSpec) -> str:
    """The codebook as HTML instructions shown to coders in Label Studio."""
    out = [f"<h3>Codebook {html.escape(spec.name)}</h3>"]
    for dim in spec.dimensions:
        cond = ""
        if dim.required_when:
            cond = (
                " (only when "
                + "; ".join(
                    f"{k} is " + " or ".join(spec.dimension(k).codes[c].label for c in v)
                    for k, v in dim.required_when.items()
                )
                + ")"
            )
        out.append(f"<h4>{html.escape(dim.key)}: {html.escape(dim.question or '')}{html.escape(cond)}</h4><ul>")
        for c in sorted(dim.codes.values(), key=lambda c: c.code):
            out.append(f"<li><b>{c.code} {html.escape(c.label)}</b>: {html.escape(c.description or '')}</li>")
        out.append("</ul>")
    return "\n".join(out)


def config_hash(config: str, instruction: str) -> str:
    return hashlib.sha256((config + "\0" + instruction).encode()).hexdigest()


# --- results → codes --------------------------------------------------------------------------------------------


@dataclass
class CheckedResult:
    """A Label Studio result checked against the codebook: codes per dimension, the note, and problems."""

    codes: dict[str, int] = field(default_factory=dict)
    sets: dict[str, tuple[int, ...]] = field(default_factory=dict)  # multi-label dimensions: the codes chosen
    proposals: list[dict[str, str]] = field(default_factory=list)  # [{dimension, text}] of new codes proposed
    note: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def check_result(result: list[dict[str, Any]] | None, spec: CodebookSpec) -> CheckedResult:
    """The server accepts anything; here unknown controls, unknown choices, several choices in a single-choice
    control and missing or misplaced (conditional) dimensions make the annotation invalid."""
    out = CheckedResult()
    seen: set[str] = set()
    values_by_dim = {d.key: {choice_value(c.code, c.label): c.code for c in d.codes.values()} for d in spec.dimensions}
    multi = {d.key for d in spec.dimensions if d.multi}
    proposing = {propose_control(d): d.key for d in spec.dimensions if d.multi}
    for entry in result or []:
        if not isinstance(entry, dict):
            out.problems.append(f"result entry is not an object: {entry!r}"[:200])
            continue
        name = str(entry.get("from_name"))
        value = entry.get("value") or {}
        if not isinstance(value, dict):
            out.problems.append(f"{name!r} has a value that is not an object: {value!r}"[:200])
            continue
        if name == NOTE:
            texts = value.get("text") or []
            text = "\n".join(str(t) for t in (texts if isinstance(texts, list) else [texts])).strip()
            out.note = text or None
            continue
        if name in proposing:
            texts = value.get("text") or []
            for line in "\n".join(str(t) for t in (texts if isinstance(texts, list) else [texts])).splitlines():
                if line.strip():
                    out.proposals.append({"dimension": proposing[name], "text": " ".join(line.split())})
            continue
        if name not in values_by_dim:
            out.problems.append(f"unknown control {name!r}")
            continue
        if name in seen:
            out.problems.append(f"{name!r} answered twice")
            continue
        seen.add(name)
        choices = value.get("choices")
        if entry.get("type") not in (None, "choices") or not isinstance(choices, list):
            out.problems.append(f"{name!r} is not a choice result (type {entry.get('type')!r})")
            continue
        if name in multi:
            codes = [values_by_dim[name].get(str(c)) for c in choices]
            unknown = [c for c, code in zip(choices, codes, strict=True) if code is None]
            if unknown:
                out.problems.append(f"unknown choice {unknown[0]!r} for {name!r}"[:200])
            elif codes:
                out.sets[name] = tuple(sorted({c for c in codes if c is not None}))
            continue
        if len(choices) != 1:
            out.problems.append(f"{name!r} is single-choice but has {len(choices)} choices {choices!r}"[:200])
            continue
        code = values_by_dim[name].get(str(choices[0]))
        if code is None:
            out.problems.append(f"unknown choice {choices[0]!r} for {name!r}"[:200])
            continue
        out.codes[name] = code
    if out.problems:
        return out
    for dim in spec.dimensions:
        applies = dim.applies(out.codes)
        given = out.sets if dim.multi else out.codes
        if applies and dim.key not in given:
            out.problems.append(f"{dim.key!r} is required here but not answered")
        elif dim.required_when and not applies and dim.key in given:
            out.problems.append(f"{dim.key!r} answered although its condition does not hold")
    return out
