"""`interop issues show` prints a timeline as GitHub would: cross-references as owner/name#number."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import Issue, IssueEvent, Repository


def test_cross_references_print_whole_issue_numbers(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        repo = Repository(full_name="acme/conv", first_seen_at=datetime(2024, 1, 1, tzinfo=UTC))
        s.add(repo)
        s.flush()
        issue = Issue(repository_id=repo.id or 0, number=7, title="export fails", state="closed", hydrated=True)
        s.add(issue)
        s.flush()
        when = datetime(2024, 2, 1, tzinfo=UTC)
        s.add(IssueEvent(issue_id=issue.id or 0, event_key="1", event="labeled", actor="bob", created_at=when))
        s.add(
            IssueEvent(
                issue_id=issue.id or 0,
                event_key="2",
                event="cross-referenced",
                actor="alice",
                source_repository="acme/other",
                source_number=902,
                source_state="closed",
                created_at=when,
            )
        )
        s.commit()
    shown = cli("issues", "show", "acme/conv#7")
    assert shown.exit_code == 0, shown.output
    assert "acme/other#902 (closed)" in shown.output and "#902.0" not in shown.output


def test_the_app_timeline_keeps_issue_numbers_whole(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    from db.queries.issues import IssueRef, issue_detail

    test_cross_references_print_whole_issue_numbers(cli, engine)
    detail = issue_detail(engine, IssueRef.parse("acme/conv#7"))
    assert detail is not None
    numbers = detail.timeline["source_number"]
    assert str(numbers.dtype) == "Int64" and numbers.dropna().tolist() == [902]
