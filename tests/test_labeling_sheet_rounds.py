"""Issue #15: sheet items keep their Title and Description, samples draw from a coded round (URL-only issues
included), and `label agreement --against` compares a round's coders with a reference round's final codes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlmodel import Session, select

from db.models.github import Issue, IssueSample, Repository
from db.queries.issues import IssueFilter, IssueRef, issue_detail, issue_list
from db.queries.labeling import LabelFilter, final_labels
from labeling.store import codebook_version, ensure_coder, ensure_round, parse_issue_url, upsert_coding


@pytest.fixture
def study(shared_dir: Path) -> Path:
    return shared_dir / "data" / "paper-artifact" / "failure-analysis"


@pytest.fixture
def loaded(cli, shared_dir: Path):  # type: ignore[no-untyped-def]
    result = cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert result.exit_code == 0, result.output
    return cli


def sheet_text(path: Path, sheet: str) -> dict[tuple[str, int], tuple[str | None, str | None]]:
    """(repository, number) → (Title, Description) read straight from a sheet."""
    rows = list(openpyxl.load_workbook(path, read_only=True)[sheet].iter_rows(values_only=True))
    header = [str(h).strip() if h else "" for h in rows[0]]
    url, title, desc = header.index("URL"), header.index("Title"), header.index("Description")
    out = {}
    for row in rows[1:]:
        parsed = parse_issue_url(str(row[url])) if row[url] else None
        if parsed:
            out[parsed] = (row[title] and str(row[title]).strip(), row[desc] and str(row[desc]).strip())
    return out


def test_import_keeps_title_and_description_and_lists_them_marked_until_mined(  # type: ignore[no-untyped-def]
    loaded, engine, study: Path, wide_console
) -> None:
    path = study / "PilotStudy.xlsx"
    expected = sheet_text(path, "tf2onnx Issues - R2")
    described = {k: v for k, v in expected.items() if v[1]}
    assert described
    premined = next(k for k in expected if k not in described)
    with Session(engine) as s:  # one issue the miner already has: its own title wins, the sheet's is kept beside
        repo = Repository(full_name=premined[0])
        s.add(repo)
        s.flush()
        s.add(Issue(repository_id=repo.id, number=premined[1], title="mined title", hydrated=True, state="closed"))
        s.commit()
    assert loaded("label", "import-sheet", str(path)).exit_code == 0
    with Session(engine) as s:
        for (repo_name, number), (title, description) in described.items():
            issue = s.exec(
                select(Issue).join(Repository).where(Repository.full_name == repo_name, Issue.number == number)
            ).one()
            assert (issue.sheet_title, issue.sheet_description) == (title, description)

    listed = issue_list(engine, IssueFilter(mined=None), limit=None)
    assert listed["title"].notna().all()  # no None titles for sheet issues
    sheet_rows = listed[~listed["mined"]]
    assert len(sheet_rows) > 0 and set(sheet_rows["title_source"]) == {"sheet"}
    (repo_name, number), (title, description) = next(iter(described.items()))
    row = listed[(listed["repository"] == repo_name) & (listed["number"] == number)].iloc[0]
    assert (row["title"], row["sheet_description"], row["title_source"]) == (title, description, "sheet")
    found = issue_list(engine, IssueFilter(mined=None, text=description.lower()), limit=None)
    assert (repo_name, number) in set(zip(found["repository"], found["number"], strict=True))

    detail = issue_detail(engine, IssueRef(repo_name, number))
    assert detail is not None and detail.issue["title_source"] == "sheet"
    assert detail.issue["sheet_description"] == description

    out = loaded("issues", "list", "--with-unmined", "--repo", repo_name, "--limit", "500").output
    assert f"{title} (from sheet)" in " ".join(out.split())
    shown = loaded("issues", "show", f"{repo_name}#{number}").output
    assert f"description (from the coding sheet): {description}" in " ".join(shown.split())

    # a sheet's Title never overwrites GitHub's title; it is kept beside it
    mined = listed[(listed["repository"] == premined[0]) & (listed["number"] == premined[1])].iloc[0]
    assert (mined["title"], mined["title_source"], mined["state"]) == ("mined title", "github", "closed")
    with Session(engine) as s:
        issue = s.exec(select(Issue).where(Issue.number == premined[1], Issue.title == "mined title")).one()
        assert issue.sheet_title == expected[premined][0]
    js = json.loads(loaded("issues", "list", "--with-unmined", "--limit", "3", "-f", "json").output)
    assert {"title", "title_source", "sheet_description"} <= set(js[0])


def test_sample_from_a_sheet_round_draws_url_only_issues_reproducibly(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    assert loaded("label", "import-sheet", str(study / "FailureAnalysis.xlsx")).exit_code == 0
    finals = final_labels(engine, LabelFilter(rounds=("failureanalysis",)))
    population = sorted({(r, int(n)) for r, n in zip(finals["repository"], finals["number"], strict=True)})
    assert len(population) == 200

    result = loaded(
        "issues", "sample", "--n", "12", "--seed", "5", "--name", "recode", "--from-round", "failureanalysis"
    )
    assert result.exit_code == 0, result.output
    assert "12 of 200 issues coded in round 'failureanalysis' stored" in result.output
    picked = random.Random(5).sample(population, 12)
    members = issue_list(engine, IssueFilter(sample="recode", mined=None), limit=None)
    assert list(zip(members["repository"], members["number"], strict=True)) == picked
    again = loaded(
        "issues", "sample", "--n", "12", "--seed", "5", "--name", "recode", "--from-round", "failureanalysis"
    )
    assert "already exists with these arguments" in again.output

    # a repository's sheet issues are eligible too (the study's data offline), unless --mined-only
    by_repo = loaded("issues", "sample", "--repo", "pytorch/pytorch", "--n", "5", "--seed", "1", "--name", "pt")
    assert by_repo.exit_code == 0 and "5 of 100 issues of pytorch/pytorch stored" in by_repo.output
    mined_only = loaded(
        "issues", "sample", "--repo", "pytorch/pytorch", "--n", "5", "--seed", "1", "--name", "pt2", "--mined-only"
    )
    assert mined_only.exit_code == 2 and "only 0 issue(s) match" in mined_only.output
    unknown = loaded("issues", "sample", "--n", "5", "--seed", "1", "--name", "x", "--from-round", "nope")
    assert unknown.exit_code == 2 and "no round named 'nope'" in unknown.output
    neither = loaded("issues", "sample", "--n", "5", "--seed", "1", "--name", "x")
    assert neither.exit_code == 2 and "--from-round" in neither.output

    # a sample stored before --from-round existed (rule without the new keys) is still found by its arguments
    with Session(engine) as s:
        old = s.exec(select(IssueSample).where(IssueSample.name == "pt")).one()
        old.rule = {k: v for k, v in old.rule.items() if k not in ("from_round", "mined_only")}
        s.add(old)
        s.commit()
    rerun = loaded("issues", "sample", "--repo", "pytorch/pytorch", "--n", "5", "--seed", "1", "--name", "pt")
    assert rerun.exit_code == 0 and "already exists with these arguments" in rerun.output


def test_agreement_against_a_reference_round(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    assert loaded("label", "import-sheet", str(study / "FailureAnalysis.xlsx")).exit_code == 0
    finals = final_labels(engine, LabelFilter(rounds=("failureanalysis",), dimensions=("symptom",)))
    finals = finals.sort_values("item_id").head(40)
    codes = sorted(set(finals["code"]))
    assert len(codes) >= 2
    alice = finals["code"].tolist()
    bob = [c if i < 28 else next(x for x in codes if x != c) for i, c in enumerate(alice)]  # 12 disagreements
    with Session(engine) as s:
        book = codebook_version(s)
        rnd = ensure_round(s, "recode", book, "sheet")
        dim_id = book.dimension_ids["symptom"]
        for name, given in (("alice", alice), ("bob", bob)):
            coder = ensure_coder(s, name)
            for item_id, code in zip(finals["item_id"], given, strict=True):
                values = {dim_id: book.code_ids[("symptom", int(code))]}
                upsert_coding(s, rnd.id or 0, int(item_id), coder.id or 0, values)
        s.commit()

    result = loaded(
        "label", "agreement", "--round", "recode", "--against", "failureanalysis", "--bootstrap", "200", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["against"] == "failureanalysis"
    rows = {(r["dimension"], r["coder"]): r for r in document["summary"]}
    assert set(rows) == {("symptom", "alice"), ("symptom", "bob")}
    assert rows[("symptom", "alice")]["items"] == 40
    assert rows[("symptom", "alice")]["percent_agreement"] == 1.0 and rows[("symptom", "alice")]["cohen_kappa"] == 1.0
    assert rows[("symptom", "bob")]["percent_agreement"] == pytest.approx(28 / 40)
    expected = cohen_kappa_score(np.array(bob, dtype=float), np.array(alice, dtype=float))
    assert rows[("symptom", "bob")]["cohen_kappa"] == pytest.approx(expected)
    low, high = rows[("symptom", "bob")]["cohen_kappa_ci"]
    assert low <= expected <= high

    table = loaded("label", "agreement", "--round", "recode", "--against", "failureanalysis", "--bootstrap", "50")
    assert "final codes of round 'failureanalysis'" in " ".join(table.output.split())
    csv = loaded("label", "agreement", "--round", "recode", "--against", "failureanalysis", "-f", "csv").output
    assert csv.splitlines()[0].startswith("round,dimension,coder,reference,items,percent_agreement")
    no_round = loaded("label", "agreement", "--against", "failureanalysis")
    assert no_round.exit_code == 2 and "--against needs --round" in no_round.output
    no_finals = loaded("label", "agreement", "--round", "failureanalysis", "--against", "recode")
    assert no_finals.exit_code == 2 and "has no final codes" in no_finals.output


def test_sheet_text_revision_keeps_the_sheet_titles_already_stored_and_goes_back(empty_db_url: str) -> None:
    from sqlalchemy import inspect, text

    from db.engine import make_engine
    from db.migrate import downgrade, upgrade

    upgrade(empty_db_url, "0022_run_reductions")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO repository (id, full_name, first_seen_at) VALUES (1, 'a/b', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO issue (id, repository_id, number, title, labels, hydrated) VALUES "
                "(1, 1, 5, 'from the sheet', '[]', false), (2, 1, 6, 'from GitHub', '[]', true), "
                "(3, 1, 7, NULL, '[]', false)"
            )
        )
    eng.dispose()
    upgrade(empty_db_url)
    eng = make_engine(empty_db_url)
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT number, sheet_title, sheet_description FROM issue ORDER BY number")).all()
    eng.dispose()
    assert [tuple(r) for r in rows] == [(5, "from the sheet", None), (6, None, None), (7, None, None)]
    downgrade(empty_db_url, "0022_run_reductions")
    eng = make_engine(empty_db_url)
    columns = {c["name"] for c in inspect(eng).get_columns("issue")}
    views = set(inspect(eng).get_view_names())
    eng.dispose()
    assert not {"sheet_title", "sheet_description"} & columns and "issue_codes" in views
