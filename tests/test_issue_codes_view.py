"""The `issue_codes` view (revision 0015_issue_codes_view): one row per item × dimension × coder, and per final."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from db.engine import make_engine
from db.migrate import downgrade, upgrade
from tests.support.codings import seed_codings


def test_one_row_per_item_dimension_and_coder_or_final(engine: Engine) -> None:
    seed_codings(engine)
    query = (
        "SELECT item_ref, item_kind, repository, issue_number, dimension, value_source, coder, decided_by, code, label "
        "FROM issue_codes ORDER BY item_ref, dimension_position, value_source, coder"
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(query))]
    issue = ("acme/conv#42", "issue", "acme/conv", 42)
    answer = ("s1:R_1:Q8", "survey_answer", None, None)
    assert rows == [
        (*issue, "symptom", "coding", "alice", None, 1, "symptom 1"),
        (*issue, "symptom", "coding", "bob", None, 1, "symptom 1"),
        (*issue, "symptom", "final", None, "agreement", 1, "symptom 1"),
        (*issue, "cause", "coding", "alice", None, 1, "cause 1"),
        (*issue, "cause", "coding", "bob", None, 2, "cause 2"),
        (*issue, "cause", "final", None, "review:carol", 2, "cause 2"),
        (*answer, "symptom", "coding", "alice", None, 2, "symptom 2"),  # bob's invalid coding has no row
    ]
    # the README's one-line example, on this round
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = next(line for line in readme.splitlines() if line.startswith("SELECT") and "FROM issue_codes" in line)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(text(example.replace("'pilotstudy'", "'r1'").rstrip(";")))] == [
            ("acme/conv", 42, "alice", "cause 1"),
            ("acme/conv", 42, "bob", "cause 2"),
            ("acme/conv", 42, None, "cause 2"),
        ]


def test_the_view_comes_and_goes_with_its_revision(empty_db_url: str) -> None:
    def views() -> set[str]:
        eng = make_engine(empty_db_url)
        try:
            return set(inspect(eng).get_view_names())
        finally:
            eng.dispose()

    upgrade(empty_db_url)
    assert "issue_codes" in views()
    downgrade(empty_db_url, "0015_issue_codes_view")
    assert views() == {"issue_codes"}  # the later views (run_outcomes) are gone, this one stays
    downgrade(empty_db_url, "0014_survey_definition")
    assert views() == set()
    upgrade(empty_db_url)
    assert "issue_codes" in views()
    eng = make_engine(empty_db_url)
    seed_codings(eng)
    with eng.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM issue_codes")).scalar_one() == 7
    eng.dispose()
    downgrade(empty_db_url, "base")
    assert views() == set()
