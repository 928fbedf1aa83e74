"""Consent/screening rules that flag responses as excluded (never deleting them), re-evaluated on every change."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from miners.survey.reader import ExportError

_RULE = re.compile(r"^\s*(?P<field>[^=!]+?)\s*(?P<op>!=|=)\s*(?P<value>.*?)\s*$", re.DOTALL)
RESPONSE_FIELD = "response"


class RuleError(ExportError):
    """An exclusion rule that cannot be understood or names nothing in the survey."""


@dataclass(frozen=True)
class ExclusionRule:
    """`QID=VALUE` (answered VALUE), `QID!=VALUE` (did not), `QID=` (left blank), `response=KEY` (one row)."""

    field: str
    op: str
    value: str
    reason: str

    @classmethod
    def parse(cls, text: str, reason: str | None = None) -> ExclusionRule:
        match = _RULE.match(text)
        if not match:
            raise RuleError(f"exclusion rule {text!r}: expected QID=VALUE, QID!=VALUE, QID= or response=KEY")
        rule = cls(match["field"], match["op"], match["value"], "")
        return cls(rule.field, rule.op, rule.value, (reason or "").strip() or f"rule {rule.expression}")

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ExclusionRule:
        return cls.parse(str(data["rule"]), str(data.get("reason") or ""))

    @property
    def expression(self) -> str:
        return f"{self.field}{self.op}{self.value}"

    def stored(self) -> dict[str, str]:
        return {"rule": self.expression, "reason": self.reason}

    def matches(self, response_key: str, answers: Mapping[str, set[str]]) -> bool:
        """Whether the rule excludes a response whose answers are {qid: {choices and texts}}."""
        if self.field == RESPONSE_FIELD:
            hit = response_key == self.value
        elif self.value == "":
            hit = not answers.get(self.field)
        else:
            hit = self.value in answers.get(self.field, set())
        return hit if self.op == "=" else not hit


def check_rules(rules: Iterable[ExclusionRule], questions: Mapping[str, tuple[str, Sequence[str]]]) -> None:
    """Refuse rules naming an unknown question or a value that is none of a choice question's choices.

    `questions` maps qid -> (kind, known choices). A typo in a consent rule would otherwise silently
    exclude (or keep) everyone.
    """
    for rule in rules:
        if rule.field == RESPONSE_FIELD:
            continue
        if rule.field not in questions:
            raise RuleError(f"exclusion rule {rule.expression!r}: no question {rule.field!r} in this survey")
        kind, choices = questions[rule.field]
        if kind in ("single", "multi", "rank") and rule.value and rule.value not in choices:
            shown = ", ".join(repr(c) for c in list(choices)[:6])
            raise RuleError(
                f"exclusion rule {rule.expression!r}: {rule.value!r} is not a choice of {rule.field} (choices: {shown})"
            )


def evaluate(
    rules: Sequence[ExclusionRule], response_key: str, answers: Mapping[str, set[str]]
) -> tuple[bool, str | None]:
    """(excluded, reason of the first matching rule)."""
    for rule in rules:
        if rule.matches(response_key, answers):
            return True, rule.reason
    return False, None


def merge_rules(stored: Iterable[Mapping[str, Any]], new: Iterable[ExclusionRule]) -> list[ExclusionRule]:
    """Stored rules plus new ones, a rule with the same expression replacing the older one's reason."""
    merged: dict[str, ExclusionRule] = {}
    for rule in [*(ExclusionRule.from_stored(s) for s in stored), *new]:
        merged[rule.expression] = rule
    return list(merged.values())
