"""Links from failure signatures to upstream issues on the study's data (both backends): candidates ranked and
stored, decisions that survive re-ranking and rule changes, the page's "known upstream" and the labelled-set
benchmark (its figures computed and stable under a seed, not held to a threshold)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from benchmarks.failure_links import LABELLED, evaluate, load_labelled
from db.models.failures import DEFAULT_SIGNATURE_RULE
from db.queries import failures as fq
from experiments.failure_links import CONVERTER_REPOS, Ranker, failure_text, link_signatures
from experiments.signatures import compute_signatures, load_rule

STUDY = "study-exporter-results"


@pytest.fixture
def study(cli, shared_dir: Path, engine: Engine) -> Engine:  # type: ignore[no-untyped-def]
    """The study's runs and coded issues, imported with the ordinary commands, then signed and ranked."""
    artifact = shared_dir / "data/paper-artifact"
    steps = [
        ("label", "codebook", "load", str(shared_dir / "codebook/onnx-converter-failures.yaml")),
        ("label", "import-sheet", str(artifact / "failure-analysis/FailureAnalysis.xlsx")),
        ("label", "import-sheet", str(artifact / "failure-analysis/PilotStudy.xlsx")),
        ("experiment", "import-results", str(artifact / "synthetic-models/exporter_test_results")),
        ("experiment", "signatures", "--campaign", STUDY),
    ]
    for step in steps:
        done = cli(*step)
        assert done.exit_code == 0, (step, done.output)
    return engine


def test_labelled_set_is_real_and_large_enough(shared_dir: Path) -> None:
    labelled = load_labelled()
    positives = labelled[labelled["label"] == 1]
    assert len(positives) >= 30 and (labelled["label"] == 0).any()
    issues = set()
    import openpyxl

    for name in ("FailureAnalysis.xlsx", "PilotStudy.xlsx"):
        book = openpyxl.load_workbook(shared_dir / "data/paper-artifact/failure-analysis" / name, read_only=True)
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                issues |= {str(c) for c in row if isinstance(c, str) and "github.com/" in c}
    for row in positives.itertuples():  # every labelled issue is one the study coded
        assert f"https://github.com/{row.repository}/issues/{row.issue}" in issues, row
    results = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    errors = {str(r.get("error")) for p in results.rglob("*.json") for r in json.loads(p.read_text())}
    for message in labelled["message"].unique():  # every message is one a study run reported
        assert message in errors, message


def test_candidates_are_stored_per_signature_from_the_converters_repositories(study: Engine) -> None:
    candidates = fq.link_candidates(study)
    signatures = fq.signatures_for_linking(study, STUDY)
    assert set(candidates["signature_id"]) <= set(signatures["id"])
    per_sig = candidates.groupby("signature_id")["rank"].agg(["min", "max", "count"])
    assert (per_sig["min"] == 1).all() and (per_sig["count"] <= 5).all()
    converter = dict(zip(signatures["id"], signatures["converter"], strict=True))
    for row in candidates.itertuples():
        assert row.repository in CONVERTER_REPOS[converter[row.signature_id]]
        assert 0 < row.score <= 1 and row.method == "tfidf-char-v1"
    ordered = candidates.sort_values(["signature_id", "rank"])
    assert (ordered.groupby("signature_id")["score"].diff().dropna() <= 1e-9).all()  # best first
    # the group-convolution failure ranks the group-conv2d issue first
    table = fq.upstream(study, STUDY)
    conv = table[(table["operator"] == "Conv") & (table["stage"] == "ort_run")]
    assert any(c.startswith("onnx/tensorflow-onnx#1434") for cs in conv["candidates"] for c in cs[:1])


def test_decisions_survive_reranking_and_rule_changes(study: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    table = fq.upstream(study, STUDY)
    trilu = table[table["operator"] == "Trilu"].iloc[0]
    assert trilu["upstream"].startswith("candidates: ")
    first = trilu["candidates"][0].split(" ")[0]
    confirmed = cli("experiment", "link", trilu["signature"], "pytorch/pytorch#32968", "--confirm", "--note", "triu")
    assert confirmed.exit_code == 0, confirmed.output
    rejected = cli("experiment", "link", trilu["signature"], first.split("#")[1], "--reject")
    assert rejected.exit_code == 0, rejected.output

    def status(rule: str = DEFAULT_SIGNATURE_RULE) -> tuple[str, list[str]]:
        row = fq.upstream(study, STUDY, rule).set_index("operator").loc["Trilu"]
        return row["upstream"], row["candidates"]

    text, open_ = status()
    assert text == "known upstream: pytorch/pytorch#32968 (confirmed)"
    assert not any(c.startswith(first + " ") for c in open_)  # the rejected one is no candidate any more
    link_signatures(study, campaign=STUDY)  # re-ranking replaces candidates, not decisions
    compute_signatures(study, campaign=STUDY)
    assert status()[0] == text
    compute_signatures(study, load_rule("sig-v1-dtypes"), STUDY)  # another rule: found through the shared runs
    link_signatures(study, "sig-v1-dtypes", STUDY)
    assert status("sig-v1-dtypes")[0] == text
    listed = cli("experiment", "failures", "--campaign", STUDY, "--format", "csv").output
    assert "known upstream: pytorch/pytorch#32968 (confirmed)" in listed
    # changing one's mind replaces the decision
    assert cli("experiment", "link", trilu["signature"], "#32968", "--reject").exit_code == 0
    assert status()[0].startswith("candidates: ") or status()[0] == "none"


def test_link_refuses_what_it_cannot_resolve(study: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    sig = fq.upstream(study, STUDY).iloc[0]["signature"]
    cases = [
        (("experiment", "link", sig, "#32968"), "give exactly one of --confirm and --reject"),
        (("experiment", "link", "zz", "#1", "--confirm"), "give at least 6 hex digits"),
        (("experiment", "link", "ffffffffff", "#1", "--confirm"), "no signature 'ffffffffff'"),
        (("experiment", "link", sig, "#999999", "--confirm"), "issue #999999 is not stored"),
        (("experiment", "link", sig, "not an issue", "--confirm"), "write owner/name#N"),
    ]
    for args, fragment in cases:
        done = cli(*args)
        assert done.exit_code == 2 and fragment in done.output, (args, done.output)


def test_benchmark_figures_are_computed_and_stable_under_a_seed(study: Engine) -> None:
    repos = sorted({r for rs in CONVERTER_REPOS.values() for r in rs})
    issues = fq.issues_for_linking(study, repos)
    labelled = load_labelled(LABELLED)
    one, again, other = evaluate(issues, labelled, seed=3, boot=200), evaluate(issues, labelled, seed=3, boot=200), None
    other = evaluate(issues, labelled, seed=4, boot=200)
    assert one.queries == labelled["query"].nunique() and one.pairs >= 30
    for name in ("precision_at_1", "recall_at_5"):
        value = getattr(one, name)
        assert not math.isnan(value) and 0 <= value <= 1
        assert value == getattr(again, name) == getattr(other, name)  # the figures do not depend on the seed
        assert one.ci[name] == again.ci[name]  # the intervals do, and are reproducible with it
        low, high = one.ci[name]
        assert low <= value <= high
    # a labelled pair found at rank 1 is counted: the ranking and the benchmark agree
    ranker = Ranker(issues)
    q = labelled[labelled["label"] == 1].iloc[0]
    top = ranker.rank(failure_text(q["message"]), CONVERTER_REPOS[q["converter"]], 1)
    row = next(r for r in one.top1 if r["query"] == q["query"])
    assert row["top1"] == f"{top.iloc[0]['repository']}#{top.iloc[0]['number']}"


def test_experiments_page_shows_known_upstream(study: Engine, cli, configured_db: str) -> None:  # type: ignore[no-untyped-def]
    import streamlit as st

    from tests.support.apptest import open_page

    trilu = fq.upstream(study, STUDY).set_index("operator").loc["Trilu", "signature"]
    assert cli("experiment", "link", trilu, "#32968", "--confirm").exit_code == 0
    st.cache_data.clear()
    at = open_page("experiments", campaign=STUDY)
    assert not at.exception
    listed = next(d.value for d in at.dataframe if "upstream" in d.value.columns).set_index("signature")
    assert listed.loc[trilu, "upstream"] == "known upstream: pytorch/pytorch#32968 (confirmed)"
    assert listed["upstream"].str.startswith("candidates: ").any()
    st.cache_data.clear()
