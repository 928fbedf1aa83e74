"""Agreement statistics against cases worked by hand and published examples, and on the study's pilot sheet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from labeling.agreement import (
    agreement_for,
    cohen_kappa,
    confusion_matrix,
    disagreements,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    krippendorff_reading,
    landis_koch,
    percent_agreement,
)

N = np.nan


def two_coders(table: dict[tuple[int, int], int]) -> np.ndarray:
    """Items × 2 matrix from a 2×2 (or k×k) contingency table {(a_code, b_code): count}."""
    rows = [(a, b) for (a, b), n in table.items() for _ in range(n)]
    return np.array(rows, dtype=float)


# Cohen (1960)-style 2×2 table: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 (50 items).
# p_o = 35/50 = 0.70; A says yes 25/50, B 30/50: p_e = .5*.6 + .5*.4 = 0.50; κ = (.7-.5)/(1-.5) = 0.40.
# Gwet: π_yes = (25/50 + 30/50)/2 = 0.55, p_e = 2 * .55 * .45 / (2-1) = 0.495; AC1 = (.7-.495)/.505 = 0.405941.
# Scott's π (= Fleiss' κ for two coders) = (.7-.505)/(1-.505) = 0.393939.
COHEN_TABLE = {(1, 1): 20, (1, 0): 5, (0, 1): 10, (0, 0): 15}


def test_two_coder_textbook_case_by_hand() -> None:
    m = two_coders(COHEN_TABLE)
    assert percent_agreement(m) == pytest.approx(0.70)
    assert cohen_kappa(m[:, 0], m[:, 1]) == pytest.approx(0.40)
    assert gwet_ac1(m) == pytest.approx(0.205 / 0.505)
    assert fleiss_kappa(m) == pytest.approx(0.195 / 0.495)
    # Krippendorff's α, 2 coders, nominal, no missing: α = 1 - D_o / D_e with D_o = 15/50 disagreeing units and
    # D_e = 2 * 55 * 45 / (100 * 99) over the n = 100 pairable values (55 "yes"): 1 - 0.3 / 0.5 = 0.4
    n_values, yes = 100, 55
    d_o = 15 / 50
    d_e = 2 * yes * (n_values - yes) / (n_values * (n_values - 1))
    assert krippendorff_alpha(m) == pytest.approx(1 - d_o / d_e)


def test_fleiss_kappa_wikipedia_example() -> None:
    # 10 subjects, 14 raters, 5 categories (Fleiss 1971 as worked on Wikipedia): κ = 0.210
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    m = np.array([[k for k, c in enumerate(row) for _ in range(c)] for row in counts], dtype=float)
    assert fleiss_kappa(m) == pytest.approx(0.20993, abs=5e-5)


def test_krippendorff_alpha_published_example_with_missing_values() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", 4 coders × 12 units, nominal α = 0.743
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
        [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
    ]
    m = np.array(coders, dtype=float).T
    assert krippendorff_alpha(m) == pytest.approx(0.743, abs=5e-4)


def test_gwet_ac1_three_coders_with_a_missing_code_by_hand() -> None:
    # items × coders; item 4 has only two codes.
    m = np.array([[1, 1, 1], [1, 1, 2], [2, 2, 2], [1, 2, N]], dtype=float)
    # p_a per item: 1, (2*1)/(3*2)=1/3, 1, 0  -> mean 7/12
    # π_1 = mean(3/3, 2/3, 0, 1/2) = 13/24, π_2 = 11/24; p_e = 2 * 13/24 * 11/24 / (2-1) = 286/576
    pa, pe = 7 / 12, 286 / 576
    assert gwet_ac1(m) == pytest.approx((pa - pe) / (1 - pe))
    # with a 4-category scale (q = 4) chance agreement shrinks: p_e = Σ π(1-π) / 3
    pe4 = (13 / 24 * 11 / 24 * 2) / 3
    assert gwet_ac1(m, categories=[1, 2, 3, 4]) == pytest.approx((pa - pe4) / (1 - pe4))


def test_prevalence_paradox_is_flagged_and_ac1_stays_high() -> None:
    # 90 both "yes", 5 + 5 disagreements, no joint "no": p_o = 0.9, p_e = .95^2 + .05^2 = .905 -> κ = -0.0526
    m = two_coders({(1, 1): 90, (1, 0): 5, (0, 1): 5})
    res = agreement_for(m, ["a", "b"], "r", "d", labels={1.0: "Crash", 0.0: "Hang"}, n_boot=200)
    assert res.pairs[0]["cohen_kappa"] == pytest.approx((0.9 - 0.905) / 0.095)
    assert res.gwet_ac1 == pytest.approx((0.9 - 0.095) / 0.905)
    text = " ".join(res.warnings)
    assert "one category dominates (Crash: 95% of codes)" in text
    assert "κ paradox" in text
    assert res.reading == "poor"


def test_different_category_rates_and_few_items_are_flagged() -> None:
    m = two_coders({(1, 1): 5, (1, 2): 6, (2, 2): 5})
    res = agreement_for(m, ["alice", "bob"], "r", "d", labels={1.0: "Crash", 2.0: "Hang"}, n_boot=100)
    text = " ".join(res.warnings)
    assert "few items (16 < 30)" in text
    assert "very different rates (alice: 69% vs bob: 31% Crash)" in text


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    m = two_coders(COHEN_TABLE)
    one = agreement_for(m, ["a", "b"], "r", "d", n_boot=300, seed=7)
    two = agreement_for(m, ["a", "b"], "r", "d", n_boot=300, seed=7)
    other = agreement_for(m, ["a", "b"], "r", "d", n_boot=300, seed=8)
    assert one.ci == two.ci and one.ci != other.ci
    lo, hi = one.pairs[0]["cohen_kappa_ci"]
    assert lo < 0.4 < hi and lo > 0 and hi < 0.8


def test_landis_koch_bands() -> None:
    assert [landis_koch(v) for v in (-0.1, 0.1, 0.3, 0.5, 0.7, 0.9, float("nan"))] == [
        "poor",
        "slight",
        "fair",
        "moderate",
        "substantial",
        "almost perfect",
        "undefined",
    ]


def test_krippendorffs_alpha_has_its_own_reading_not_the_kappa_scale() -> None:
    values = (0.95, 0.8, 0.7996, 0.7, 0.667, 0.6664, 0.615, -0.2, float("nan"))
    assert [krippendorff_reading(v) for v in values] == [
        "reliable",
        "reliable",
        "reliable",  # shown as 0.800
        "tentative conclusions",
        "tentative conclusions",
        "unreliable",  # shown as 0.666
        "unreliable",  # "substantial" on the Landis–Koch scale
        "unreliable",
        "undefined",
    ]
    # p_o = 41/50, both coders say "yes" half the time or so: κ ≈ 0.64 (substantial), α ≈ 0.64 (unreliable)
    res = agreement_for(two_coders({(1, 1): 21, (0, 0): 20, (1, 0): 5, (0, 1): 4}), ["a", "b"], "r", "d", n_boot=20)
    assert 0.6 < res.krippendorff_alpha < 0.667 and 0.6 < res.pairs[0]["cohen_kappa"] < 0.8
    assert res.reading == "substantial" and res.alpha_reading == "unreliable"
    assert res.as_row()["krippendorff_alpha_reading"] == "unreliable"


def test_undefined_when_one_category_only() -> None:
    m = np.ones((5, 2))
    assert math.isnan(cohen_kappa(m[:, 0], m[:, 1])) and math.isnan(krippendorff_alpha(m))
    assert percent_agreement(m) == 1.0


def _ratings(rows: list[tuple[int, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "round": "r",
                "dimension": "cause",
                "dimension_position": 0,
                "item_id": i,
                "item": f"o/r#{i}",
                "title": f"t{i}",
                "coder": c,
                "code": code,
                "label": f"L{code}",
            }
            for i, c, code in rows
        ]
    )


def test_confusion_matrix_and_disagreement_list() -> None:
    frame = _ratings([(1, "a", 1), (1, "b", 1), (2, "a", 1), (2, "b", 2), (3, "a", 2), (3, "b", 2)])
    cm = confusion_matrix(frame, "r", "cause", "a", "b")
    assert cm.loc["L1", "L1"] == 1 and cm.loc["L1", "L2"] == 1 and cm.loc["L2", "L2"] == 1
    dis = disagreements(frame)
    assert dis["item"].tolist() == ["o/r#2"] and dis.iloc[0]["a"] == "1 L1" and dis.iloc[0]["b"] == "2 L2"


def test_pilot_agreement_matches_an_independent_computation_from_the_sheet(cli, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    path = shared_dir / "data" / "paper-artifact" / "failure-analysis" / "PilotStudy.xlsx"
    cli("label", "import-sheet", str(path))
    result = cli("label", "agreement", "--round", "pilotstudy", "--format", "json", "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    summary = {r["dimension"]: r for r in json.loads(result.output)["summary"]}
    # independent: Cohen's κ from the Interrater sheet's two blocks, computed with plain arithmetic
    rows = [
        r
        for r in openpyxl.load_workbook(path, data_only=True)["Interrater"].iter_rows(min_row=3, values_only=True)
        if r[0] is not None
    ]
    for dim, (c1, c2) in {"cause": (1, 2), "symptom": (4, 5)}.items():
        pairs = [(r[c1], r[c2]) for r in rows] + [(r[9 + c1], r[9 + c2]) for r in rows]
        n = len(pairs)
        po = sum(a == b for a, b in pairs) / n
        cats = {a for p in pairs for a in p}
        pe = sum((sum(a == k for a, _ in pairs) / n) * (sum(b == k for _, b in pairs) / n) for k in cats)
        assert summary[dim]["items"] == n == 60
        assert summary[dim]["percent_agreement"] == pytest.approx(po)
        assert summary[dim]["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))
        lo, hi = summary[dim]["cohen_kappa_ci"]
        assert lo <= summary[dim]["cohen_kappa"] <= hi
    table = cli("label", "agreement", "--round", "pilotstudy", "--bootstrap", "50", "--disagreements", "--confusion")
    assert "7 disagreements" in table.output and "Gwet's AC1" in table.output
    text = " ".join(table.output.split())
    assert "Krippendorff's α │ 0.904 │" in text and "│ reliable (Krippendorff) │" in text
    assert "almost perfect (Landis–Koch)" in text and "α on Krippendorff's (2004): ≥ 0.800 reliable" in text
    assert "almost perfect (Krippendorff)" not in text
    assert summary["cause"]["krippendorff_alpha_reading"] == "reliable"
    csv = cli("label", "agreement", "--format", "csv", "--bootstrap", "0", "--dimension", "cause")
    assert csv.output.splitlines()[0].startswith("round,dimension,coders,items")
    missing = cli("label", "agreement", "--round", "nope")
    assert missing.exit_code == 2 and "no round named 'nope' (known rounds: pilotstudy)" in missing.output


def one_error_line(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


def test_agreement_unknown_format_round_or_dimension_lists_the_choices(cli, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    cli("label", "import-sheet", str(shared_dir / "data" / "paper-artifact" / "failure-analysis" / "PilotStudy.xlsx"))
    dims = "symptom, cause, incompatibility_type, type_problem_type, component"
    one_error_line(cli("label", "agreement", "--format", "xml"), "unknown --format 'xml'", "table, json, csv")
    one_error_line(cli("label", "agreement", "--round", "pilot"), "no round named 'pilot'", "pilotstudy")
    one_error_line(
        cli("label", "agreement", "--round", "pilotstudy", "--dimension", "colour"),
        "unknown --dimension 'colour' in round 'pilotstudy'",
        dims,
    )
    one_error_line(cli("label", "agreement", "--dimension", "colour"), "unknown --dimension 'colour'", dims)
    # a dimension of the codebook the round did not code is not unknown: it has no codings
    one_error_line(
        cli("label", "agreement", "--round", "pilotstudy", "--dimension", "component", "--bootstrap", "0"),
        "no valid codings in round 'pilotstudy' for dimension 'component'",
    )
