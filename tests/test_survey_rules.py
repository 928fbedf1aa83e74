"""Exclusion rules without a database: parsing, matching single/multi/blank answers, typo refusal."""

from __future__ import annotations

import pytest

from miners.survey.exclusion import ExclusionRule, RuleError, check_rules, evaluate, merge_rules

ANSWERS = {"Q52": {"Yes, I consent"}, "Q60": {"PyTorch", "MLX"}, "Q62": set()}


@pytest.mark.parametrize(
    ("rule", "hit"),
    [
        ("Q52=Yes, I consent", True),
        ("Q52!=Yes, I consent", False),
        ("Q60=MLX", True),  # a multi-select answer matches any of its selected choices
        ("Q60!=TensorFlow", True),
        ("Q62=", True),  # left blank
        ("Q62!=", False),
        ("Q99=", True),  # never answered counts as blank
        ("response=R_1", True),
        ("response!=R_1", False),
    ],
)
def test_rules_match_answers(rule: str, hit: bool) -> None:
    assert ExclusionRule.parse(rule).matches("R_1", ANSWERS) is hit


def test_parse_keeps_commas_and_spaces_inside_values() -> None:
    rule = ExclusionRule.parse("  Q52 != Yes, I consent ", "no consent")
    assert (rule.field, rule.op, rule.value, rule.reason) == ("Q52", "!=", "Yes, I consent", "no consent")
    assert rule.expression == "Q52!=Yes, I consent"
    assert ExclusionRule.parse("Q1=").reason == "rule Q1="
    with pytest.raises(RuleError, match="expected QID=VALUE"):
        ExclusionRule.parse("Q52 is no")


def test_first_matching_rule_gives_the_reason() -> None:
    rules = [ExclusionRule.parse("Q62=", "no tools"), ExclusionRule.parse("Q60=MLX", "mlx user")]
    assert evaluate(rules, "R_1", ANSWERS) == (True, "no tools")
    assert evaluate(rules[1:], "R_2", {"Q60": {"PyTorch"}}) == (False, None)


def test_check_rules_refuses_unknown_questions_and_values() -> None:
    questions = {"Q52": ("single", ["Yes, I consent"]), "Q64": ("text", [])}
    check_rules([ExclusionRule.parse("Q52=Yes, I consent"), ExclusionRule.parse("Q64=anything")], questions)
    with pytest.raises(RuleError, match="no question 'Q5' in this survey"):
        check_rules([ExclusionRule.parse("Q5=No")], questions)
    with pytest.raises(RuleError, match="'Yes' is not a choice of Q52"):
        check_rules([ExclusionRule.parse("Q52=Yes")], questions)


def test_merge_replaces_the_reason_of_a_repeated_rule() -> None:
    stored = [{"rule": "Q52!=Yes, I consent", "reason": "old"}]
    merged = merge_rules(stored, [ExclusionRule.parse("Q52!=Yes, I consent", "new"), ExclusionRule.parse("Q1=")])
    assert [r.stored() for r in merged] == [
        {"rule": "Q52!=Yes, I consent", "reason": "new"},
        {"rule": "Q1=", "reason": "rule Q1="},
    ]
