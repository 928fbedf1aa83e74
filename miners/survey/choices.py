"""Choice lists and question kinds: split comma-joined multi-select cells without breaking choices with commas.

Qualtrics joins the selected choices of a multi-select question with a bare "," (no space), while choice
labels written by people put a space after their own commas ("(e.g., converting …)", "base, large, 50").
So a comma *outside parentheses and not followed by whitespace* is a candidate separator ("safe split").
Known choices (from an override file, the `Qxx_N_TEXT` header labels and the safe segments of all cells)
are then matched greedily, longest first, at each position; what matches nothing is an unknown fragment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

#: Most distinct values a closed question (single/multi) may have before it is taken for free text.
MAX_CHOICES = 30
#: Whole answers must repeat this often on average for a marker-less column to be single-choice.
SINGLE_REPEAT = 1.5
#: Words in a question text that announce a multi-select question.
MULTI_HINT = re.compile(
    r"check all|select all|all that apply|check the top|check each box|check the box|choose all|select up to",
    re.IGNORECASE,
)
SELECTED_CHOICE_SUFFIX = " - Selected Choice"
TEXT_COLUMN = re.compile(r"^(?P<base>.+)_(?P<n>\d+)_TEXT$", re.IGNORECASE)


@dataclass(frozen=True)
class Fragment:
    """A piece of a multi-select cell: the choice it matched (or the raw text) and whether it was known."""

    text: str
    known: bool


def _next_separator(cell: str, start: int) -> int:
    """Index of the next safe-split comma at or after `start` (len(cell) when there is none)."""
    depth = 0
    for i in range(start, len(cell)):
        ch = cell[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and i + 1 < len(cell) and not cell[i + 1].isspace():
            return i
    return len(cell)


def safe_segments(cell: str) -> list[str]:
    """The cell split at safe-split commas only (outside brackets, not followed by whitespace)."""
    parts, pos = [], 0
    while pos <= len(cell):
        end = _next_separator(cell, pos)
        part = cell[pos:end].strip()
        if part:
            parts.append(part)
        pos = end + 1
    return parts


def _ends_choice(cell: str, end: int) -> bool:
    """A choice may end here: at the end of the cell or before a separator comma (no space after it)."""
    rest = cell[end:].rstrip()
    return rest == "" or (rest[0] == "," and len(rest) > 1 and not rest[1].isspace())


def split_cell(cell: str, known: Sequence[str]) -> list[Fragment]:
    """Greedy longest match of known choices from left to right; the rest splits at safe commas as unknown."""
    return list(_split_cached(cell, tuple(known)))


@lru_cache(maxsize=65536)
def _split_cached(cell: str, known: tuple[str, ...]) -> tuple[Fragment, ...]:
    """Cells repeat a lot (the same choice combinations), so each distinct one is split once."""
    ordered = sorted({k for k in known if k}, key=len, reverse=True)
    fragments: list[Fragment] = []
    pos, n = 0, len(cell)
    while pos < n:
        if cell[pos] == "," or cell[pos].isspace():
            pos += 1
            continue
        match = next((c for c in ordered if cell.startswith(c, pos) and _ends_choice(cell, pos + len(c))), None)
        if match is not None:
            fragments.append(Fragment(match, True))
            pos += len(match)
            continue
        end = _next_separator(cell, pos)
        piece = cell[pos:end].strip()
        if piece:
            fragments.append(Fragment(piece, False))
        pos = end + 1
    return tuple(fragments)


def derive_choices(
    cells: Iterable[str], seed: Sequence[str] = (), ignore: Iterable[str] = (), tail: Sequence[str] = ()
) -> list[str]:
    """Known choices of a multi-select question: `seed` first, then new safe segments in order of appearance,
    then any `tail` choice (e.g. an "Other (please specify)" label from a _TEXT header) nobody selected."""
    skip = set(ignore)
    choices: list[str] = [c for c in dict.fromkeys(seed) if c not in skip]
    for cell in cells:
        for fragment in split_cell(cell, [*choices, *tail]):
            if fragment.text not in choices and fragment.text not in skip:
                choices.append(fragment.text)
    choices.extend(c for c in dict.fromkeys(tail) if c not in choices and c not in skip)
    return choices


def infer_kind(text: str, cells: Sequence[str], ignore: Iterable[str] = ()) -> tuple[str, str]:
    """single / multi / text for a question column, with the reason (stored so researchers can audit it).

    1. "- Selected Choice" in the header text, or a "check all that apply"-like hint, marks a choice question:
       multi when the hint is there or any cell joins several choices, else single.
    2. Otherwise: multi when cells join several recurring choices (segments repeat >= 2x on average, at
       most MAX_CHOICES distinct); single when whole answers repeat >= SINGLE_REPEAT
       times on average with at most MAX_CHOICES distinct values; free text otherwise.
    Re-imports keep the kind stored by the first import; an overrides file can set any kind.
    """
    skip = set(ignore)
    values = [c.strip() for c in cells if c and c.strip()]
    segmented = [[s for s in safe_segments(v) if s not in skip] for v in values]
    joined = sum(1 for segs in segmented if len(segs) > 1)
    selected = text.rstrip().endswith(SELECTED_CHOICE_SUFFIX.strip()) or SELECTED_CHOICE_SUFFIX in text
    hint = MULTI_HINT.search(text)
    if selected or hint:
        why = "'Selected Choice' header" if selected else f"'{hint.group(0)}' in the question text"  # type: ignore[union-attr]
        if hint:
            return "multi", f"{why}; '{hint.group(0)}' in the question text"
        if joined:
            return "multi", f"{why}; {joined} cell(s) join several choices"
        return "single", f"{why}; no cell joins several choices"
    if not values:
        return "text", "no answers and no choice markers in the header"
    distinct = len(set(values))
    segments = [s for segs in segmented for s in segs]
    distinct_segments = len(set(segments)) or 1
    if joined and len(segments) / distinct_segments >= 2 and distinct_segments <= MAX_CHOICES:
        return "multi", f"{joined} cell(s) join recurring choices ({distinct_segments} distinct choices)"
    if len(values) / distinct >= SINGLE_REPEAT and distinct <= MAX_CHOICES:
        return "single", f"{distinct} distinct values repeat over {len(values)} answers"
    return "text", f"{distinct} distinct values in {len(values)} answers (free text)"


def text_column_label(column_text: str, parent_text: str) -> str:
    """The choice a `Qxx_N_TEXT` column belongs to, from its header "<question> - <choice> - Text"."""
    body = column_text.strip()
    if body.endswith(" - Text"):
        body = body[: -len(" - Text")]
    prefix = parent_text.strip()
    if prefix.endswith(SELECTED_CHOICE_SUFFIX):
        prefix = prefix[: -len(SELECTED_CHOICE_SUFFIX)]
    if prefix and body.startswith(prefix + " - "):
        return body[len(prefix) + 3 :].strip()
    return body.rsplit(" - ", 1)[-1].strip() if " - " in body else body
