"""Inter-rater agreement per round and dimension: κ (Cohen, Fleiss), Krippendorff's α, Gwet's AC1, with
seeded bootstrap intervals, readings (Landis–Koch for κ-type coefficients, Krippendorff's own for α) and
warnings where a statistic is easy to misread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

FEW_ITEMS = 30
DOMINANT_SHARE = 0.8
RATE_GAP = 0.2
LANDIS_KOCH = (
    (0.0, "poor"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
)


def landis_koch(value: float | None) -> str:
    """Landis & Koch (1977) reading of a κ-type coefficient."""
    if value is None or math.isnan(value):
        return "undefined"
    if value < 0:
        return "poor"
    for upper, word in LANDIS_KOCH[1:]:
        if value <= upper + 1e-12:
            return word
    return "almost perfect"


#: Krippendorff (2004, Content Analysis, 2nd ed., p. 241): rely on data with α ≥ .800; consider data with
#: .667 ≤ α < .800 only for drawing tentative conclusions; discard lower. α is not a κ: its own scale applies.
KRIPPENDORFF = ((0.800, "reliable"), (0.667, "tentative conclusions"))
KRIPPENDORFF_BELOW = "unreliable"


def krippendorff_reading(value: float | None) -> str:
    """Krippendorff's (2004) reading of α, on the value as shown (three decimals)."""
    if value is None or math.isnan(value):
        return "undefined"
    shown = round(float(value), 3)
    for lower, word in KRIPPENDORFF:
        if shown >= lower:
            return word
    return KRIPPENDORFF_BELOW


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


# --- the coefficients, each on an items × coders matrix of category codes (NaN = not coded) -------------------


def percent_agreement(matrix: np.ndarray) -> float:
    """Share of items (with ≥ 2 codes) on which every coder who coded it gave the same code."""
    agree = total = 0
    for row in matrix:
        vals = row[~np.isnan(row)]
        if len(vals) >= 2:
            total += 1
            agree += int(np.all(vals == vals[0]))
    return agree / total if total else float("nan")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's κ of two coders on the items both coded (scikit-learn); NaN when undefined."""
    from sklearn.metrics import cohen_kappa_score

    mask = ~np.isnan(a) & ~np.isnan(b)
    if mask.sum() < 2:
        return float("nan")
    x, y = a[mask], b[mask]
    if len(np.union1d(x, y)) < 2:
        return float("nan")  # one category only: chance agreement is 1, κ is 0/0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(cohen_kappa_score(x, y))


def fleiss_kappa(matrix: np.ndarray) -> float:
    """Fleiss' κ (statsmodels) on the items every coder coded."""
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    complete = matrix[~np.isnan(matrix).any(axis=1)]
    if len(complete) < 2 or matrix.shape[1] < 2:
        return float("nan")
    table, _ = aggregate_raters(complete.astype(int))
    if table.shape[1] < 2:
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sm_fleiss(table, method="fleiss"))


def krippendorff_alpha(matrix: np.ndarray) -> float:
    """Krippendorff's α for nominal data (`krippendorff` package); missing codes allowed."""
    import krippendorff

    data = matrix.T  # coders × items
    usable = (~np.isnan(data)).sum(axis=0) >= 2
    data = data[:, usable]
    if data.shape[1] < 1 or len(np.unique(data[~np.isnan(data)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def gwet_ac1(matrix: np.ndarray, categories: Sequence[float] | None = None) -> float:
    """Gwet's AC1 for any number of coders and missing codes (Gwet 2008, eq. for multiple raters):
    p_a = mean over items with r_i ≥ 2 of Σ_k r_ik(r_ik − 1) / (r_i(r_i − 1));
    π_k = mean over items with r_i ≥ 1 of r_ik / r_i;  p_e = Σ_k π_k(1 − π_k) / (q − 1);
    AC1 = (p_a − p_e) / (1 − p_e), with q the number of categories of the scale (the codebook's codes)."""
    observed = np.unique(matrix[~np.isnan(matrix)])
    cats = np.array(sorted(set(categories or []) | set(observed.tolist())), dtype=float)
    q = len(cats)
    if q < 2:
        return float("nan")
    counts = np.stack([(matrix == c).sum(axis=1) for c in cats], axis=1).astype(float)  # items × q
    r = counts.sum(axis=1)
    rated = r >= 1
    paired = r >= 2
    if paired.sum() == 0:
        return float("nan")
    pa = float(np.mean((counts[paired] * (counts[paired] - 1)).sum(axis=1) / (r[paired] * (r[paired] - 1))))
    pi = (counts[rated] / r[rated][:, None]).mean(axis=0)
    pe = float((pi * (1 - pi)).sum() / (q - 1))
    if pe >= 1:
        return float("nan")
    return (pa - pe) / (1 - pe)


# --- the report -------------------------------------------------------------------------------------------------


@dataclass
class DimensionAgreement:
    """Agreement of one round and dimension, with intervals, reading and warnings."""

    round: str
    dimension: str
    coders: list[str]
    items: int
    items_complete: int
    percent_agreement: float
    fleiss_kappa: float
    krippendorff_alpha: float
    gwet_ac1: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    distance: str = "nominal"  # α's distance: nominal, or MASI for a multi-label dimension (sets of codes)
    themes: list[dict[str, Any]] = field(default_factory=list)  # multi-label: per-theme presence κ

    @property
    def reading(self) -> str:
        """Landis–Koch reading of κ: Cohen's for two coders, Fleiss' for more."""
        if self.distance != "nominal":
            return "per theme"
        kappa = self.fleiss_kappa if len(self.coders) > 2 or not self.pairs else self.pairs[0]["cohen_kappa"]
        return landis_koch(kappa)

    @property
    def alpha_reading(self) -> str:
        """Krippendorff's reading of α (reliable / tentative conclusions / unreliable)."""
        return krippendorff_reading(self.krippendorff_alpha)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "round": self.round,
            "dimension": self.dimension,
            "coders": ",".join(self.coders),
            "items": self.items,
            "items_complete": self.items_complete,
            "percent_agreement": self.percent_agreement,
        }
        if len(self.pairs) == 1:
            row["cohen_kappa"] = self.pairs[0]["cohen_kappa"]
            row["cohen_kappa_ci"] = self.pairs[0]["cohen_kappa_ci"]
        for name in ("fleiss_kappa", "krippendorff_alpha", "gwet_ac1"):
            row[name] = getattr(self, name)
            row[f"{name}_ci"] = self.ci.get(name, (float("nan"), float("nan")))
        row["percent_agreement_ci"] = self.ci.get("percent_agreement", (float("nan"), float("nan")))
        row["reading"] = self.reading
        row["krippendorff_alpha_reading"] = self.alpha_reading
        row["alpha_distance"] = self.distance
        row["warnings"] = list(self.warnings)
        return row


def _ci(values: list[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if not math.isnan(v)])
    if len(arr) < 10:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(arr, [2.5, 97.5])
    return (float(lo), float(hi))


def _warnings(matrix: np.ndarray, coders: list[str], labels: dict[float, str], result: DimensionAgreement) -> list[str]:
    out: list[str] = []
    if result.items < FEW_ITEMS:
        out.append(f"few items ({result.items} < {FEW_ITEMS}): the coefficients and intervals are unstable")
    values = matrix[~np.isnan(matrix)]
    if len(values):
        cats, counts = np.unique(values, return_counts=True)
        top = int(np.argmax(counts))
        share = counts[top] / counts.sum()
        if len(cats) == 1:
            out.append(f"only one category is used ({labels.get(cats[0], cats[0])}): κ and α are undefined")
        elif share >= DOMINANT_SHARE:
            out.append(
                f"one category dominates ({labels.get(cats[top], cats[top])}: {share:.0%} of codes): κ and α can be "
                "low despite high agreement (prevalence paradox); read Gwet's AC1 and percent agreement alongside"
            )
    kappa = result.pairs[0]["cohen_kappa"] if len(result.pairs) == 1 else result.fleiss_kappa
    if result.percent_agreement >= 0.8 and not math.isnan(kappa) and kappa < 0.4:
        out.append(f"high percent agreement ({result.percent_agreement:.0%}) but low κ ({kappa:.2f}): the κ paradox")
    for i, j in combinations(range(len(coders)), 2):
        a, b = matrix[:, i], matrix[:, j]
        mask = ~np.isnan(a) & ~np.isnan(b)
        if mask.sum() < 2:
            continue
        cats = np.union1d(a[mask], b[mask])
        pa = np.array([(a[mask] == c).mean() for c in cats])
        pb = np.array([(b[mask] == c).mean() for c in cats])
        gap = float(np.abs(pa - pb).max())
        if gap >= RATE_GAP:
            k = int(np.argmax(np.abs(pa - pb)))
            name = labels.get(cats[k], cats[k])
            out.append(
                f"coders use categories at very different rates ({coders[i]}: {pa[k]:.0%} vs "
                f"{coders[j]}: {pb[k]:.0%} {name}): κ penalizes this bias, AC1 and α treat it differently"
            )
    return out


def agreement_for(
    matrix: np.ndarray,
    coders: list[str],
    round_name: str,
    dimension: str,
    categories: Sequence[float] | None = None,
    labels: dict[float, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> DimensionAgreement:
    """All coefficients for one items × coders matrix, with bootstrap CIs over items (seeded)."""
    paired = (~np.isnan(matrix)).sum(axis=1) >= 2
    matrix = matrix[paired]
    complete = int((~np.isnan(matrix)).all(axis=1).sum())
    result = DimensionAgreement(
        round=round_name,
        dimension=dimension,
        coders=coders,
        items=len(matrix),
        items_complete=complete,
        percent_agreement=percent_agreement(matrix),
        fleiss_kappa=fleiss_kappa(matrix),
        krippendorff_alpha=krippendorff_alpha(matrix),
        gwet_ac1=gwet_ac1(matrix, categories),
    )
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(matrix), len(matrix)) for _ in range(n_boot)] if len(matrix) else []
    stats = {
        "percent_agreement": percent_agreement,
        "fleiss_kappa": fleiss_kappa,
        "krippendorff_alpha": krippendorff_alpha,
        "gwet_ac1": lambda m: gwet_ac1(m, categories),
    }
    for name, fn in stats.items():
        result.ci[name] = _ci([fn(matrix[idx]) for idx in boots])
    for i, j in combinations(range(len(coders)), 2):
        a, b = matrix[:, i], matrix[:, j]
        both = ~np.isnan(a) & ~np.isnan(b)
        result.pairs.append(
            {
                "round": round_name,
                "dimension": dimension,
                "coder_a": coders[i],
                "coder_b": coders[j],
                "items": int(both.sum()),
                "percent_agreement": float((a[both] == b[both]).mean()) if both.any() else float("nan"),
                "cohen_kappa": cohen_kappa(a, b),
                "cohen_kappa_ci": _ci([cohen_kappa(a[idx], b[idx]) for idx in boots]),
            }
        )
        result.pairs[-1]["reading"] = landis_koch(result.pairs[-1]["cohen_kappa"])
    result.warnings = _warnings(matrix, coders, labels or {}, result)
    return result


def matrices(ratings: pd.DataFrame) -> dict[tuple[str, str], tuple[pd.DataFrame, dict[float, str]]]:
    """Per (round, dimension): the items × coders matrix of codes and the code → label map."""
    out: dict[tuple[str, str], tuple[pd.DataFrame, dict[float, str]]] = {}
    if ratings.empty:
        return out
    order = ratings.drop_duplicates(["round", "dimension"]).sort_values(["round", "dimension_position"])
    for rnd, dim in order[["round", "dimension"]].itertuples(index=False):
        sub = ratings[(ratings["round"] == rnd) & (ratings["dimension"] == dim)]
        wide = sub.pivot_table(index="item_id", columns="coder", values="code", aggfunc="first").astype(float)
        labels = dict(zip(sub["code"].astype(float), sub["label"], strict=False))
        out[(rnd, dim)] = (wide, labels)
    return out


def agreement_report(
    ratings: pd.DataFrame,
    categories: dict[tuple[str, str], list[int]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    multi: set[tuple[str, str]] | None = None,
    coded: pd.DataFrame | None = None,
) -> list[DimensionAgreement]:
    """Agreement for every (round, dimension) in a long ratings frame that has at least two coders; `multi`
    (round, dimension) pairs are multi-label (MASI α, per-theme κ; `coded` gives the items coded without theme)."""
    multi = multi or set()
    results = []
    for (rnd, dim), (sets, coders, themes) in set_matrices(ratings, coded, multi).items():
        if not ratings.empty and ((ratings["round"] == rnd) & (ratings["dimension"] == dim)).any():
            results.append(multi_label_agreement(sets, coders, rnd, dim, themes, n_boot=n_boot, seed=seed))
    for (rnd, dim), (wide, labels) in matrices(ratings).items():
        if wide.shape[1] < 2 or (rnd, dim) in multi:
            continue
        cats = [float(c) for c in (categories or {}).get((rnd, dim), [])]
        results.append(
            agreement_for(
                wide.to_numpy(), [str(c) for c in wide.columns], rnd, dim, cats, labels, n_boot=n_boot, seed=seed
            )
        )
    return results


def confusion_matrix(
    ratings: pd.DataFrame, round_name: str, dimension: str, coder_a: str, coder_b: str
) -> pd.DataFrame:
    """Coder A's labels (rows) × coder B's labels (columns) over the items both coded."""
    sub = ratings[(ratings["round"] == round_name) & (ratings["dimension"] == dimension)]
    wide = sub.pivot_table(index="item_id", columns="coder", values="label", aggfunc="first")
    if coder_a not in wide or coder_b not in wide:
        return pd.DataFrame()
    both = wide[[coder_a, coder_b]].dropna()
    return pd.crosstab(both[coder_a], both[coder_b], rownames=[coder_a], colnames=[coder_b])


def disagreements(ratings: pd.DataFrame) -> pd.DataFrame:
    """Items whose coders gave different codes: one row per round, dimension and item, a column per coder."""
    rows = []
    for (rnd, dim), group in ratings.groupby(["round", "dimension"], sort=False):
        for item_id, item in group.groupby("item_id"):
            if item["code"].nunique() > 1:
                first = item.iloc[0]
                row = {
                    "round": rnd,
                    "dimension": dim,
                    "item_id": item_id,
                    "item": first["item"],
                    "title": first["title"],
                }
                row.update(
                    {
                        c: f"{code} {label}"
                        for c, code, label in item[["coder", "code", "label"]].itertuples(index=False)
                    }
                )
                rows.append(row)
    return pd.DataFrame(rows)


def summary_frame(results: list[DimensionAgreement]) -> pd.DataFrame:
    """One row per round and dimension (CIs as _low/_high columns, warnings joined): for the app and exports."""
    table = pd.DataFrame([r.as_row() for r in results])
    if table.empty:
        return table
    table["warnings"] = table["warnings"].map(" | ".join)
    for col in [c for c in table.columns if c.endswith("_ci")]:
        table[f"{col}_low"] = table[col].map(lambda t: t[0] if isinstance(t, tuple) else float("nan"))
        table[f"{col}_high"] = table[col].map(lambda t: t[1] if isinstance(t, tuple) else float("nan"))
        del table[col]
    return table


# --- multi-label dimensions (themes): MASI α, exact-set agreement, per-theme presence κ -----------------------

#: A coder's answer to a multi-label dimension for one item: the set of codes (empty: coded, no theme applies).
CodeSet = frozenset[int]


def masi_distance(a: CodeSet, b: CodeSet) -> float:
    """Passonneau's (2006) MASI distance, as NLTK computes it (1 − Jaccard × monotonicity); two empty sets agree."""
    if not a and not b:
        return 0.0
    inter, union = len(a & b), len(a | b)
    if len(a) == len(b) == inter:
        m = 1.0
    elif inter == min(len(a), len(b)):
        m = 2 / 3
    elif inter > 0:
        m = 1 / 3
    else:
        m = 0.0
    return 1 - inter / union * m


def masi_alpha(sets: np.ndarray) -> float:
    """Krippendorff's α with the MASI distance on an items × coders array of code sets (None = not coded): the
    same observed and expected disagreement NLTK's `AnnotationTask.alpha` computes; NaN when undefined."""
    units = [[s for s in row if s is not None] for row in sets]
    units = [u for u in units if len(u) >= 2]
    values = sorted({s for u in units for s in u}, key=lambda s: sorted(s))
    if len(values) < 2:
        return float("nan")
    index = {s: i for i, s in enumerate(values)}
    dist = np.array([[masi_distance(a, b) for b in values] for a in values])
    counts = np.zeros((len(units), len(values)))
    for u, unit in enumerate(units):
        for s in unit:
            counts[u, index[s]] += 1
    m = counts.sum(axis=1)
    n = m.sum()
    observed = float(np.einsum("ui,ij,uj->u", counts, dist, counts).dot(1 / (m - 1)) / n)
    total = counts.sum(axis=0)
    expected = float(total @ dist @ total / (n * (n - 1)))
    if expected == 0:
        return float("nan")
    return 1 - observed / expected


def set_agreement(sets: np.ndarray) -> float:
    """Share of items (with ≥ 2 codings) on which every coder chose exactly the same set of codes."""
    agree = total = 0
    for row in sets:
        given = [s for s in row if s is not None]
        if len(given) >= 2:
            total += 1
            agree += int(all(s == given[0] for s in given))
    return agree / total if total else float("nan")


def presence_matrix(sets: np.ndarray, code: int) -> np.ndarray:
    """Items × coders: 1 where the coder chose `code`, 0 where not, NaN where the coder did not code the item."""
    out = np.full(sets.shape, np.nan)
    for (i, j), s in np.ndenumerate(sets):
        if s is not None:
            out[i, j] = float(code in s)
    return out


def multi_label_agreement(
    sets: np.ndarray,
    coders: list[str],
    round_name: str,
    dimension: str,
    themes: dict[int, str],
    n_boot: int = 1000,
    seed: int = 0,
) -> DimensionAgreement:
    """A multi-label dimension: exact-set percent agreement, Krippendorff's α with the MASI distance, and per
    theme its presence coded 1/0 with Cohen's κ (two coders) or Fleiss' κ, each with the nominal statistics'
    seeded bootstrap intervals over items and warnings (per theme: prevalence, rates, the κ paradox)."""
    paired = np.array([sum(s is not None for s in row) >= 2 for row in sets], dtype=bool)
    sets = sets[paired] if len(sets) else sets
    complete = int(sum(all(s is not None for s in row) for row in sets))
    result = DimensionAgreement(
        round=round_name,
        dimension=dimension,
        coders=coders,
        items=len(sets),
        items_complete=complete,
        percent_agreement=set_agreement(sets),
        fleiss_kappa=float("nan"),
        krippendorff_alpha=masi_alpha(sets),
        gwet_ac1=float("nan"),
        distance="MASI",
    )
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(sets), len(sets)) for _ in range(n_boot)] if len(sets) else []
    result.ci["percent_agreement"] = _ci([set_agreement(sets[idx]) for idx in boots])
    result.ci["krippendorff_alpha"] = _ci([masi_alpha(sets[idx]) for idx in boots])
    for i, j in combinations(range(len(coders)), 2):
        both = np.array([a is not None and b is not None for a, b in zip(sets[:, i], sets[:, j], strict=True)])
        a, b = sets[both, i] if len(sets) else sets, sets[both, j] if len(sets) else sets
        result.pairs.append(
            {
                "round": round_name,
                "dimension": dimension,
                "coder_a": coders[i],
                "coder_b": coders[j],
                "items": int(both.sum()) if len(sets) else 0,
                "percent_agreement": float(np.mean([x == y for x, y in zip(a, b, strict=True)]))
                if len(a)
                else float("nan"),
                "cohen_kappa": float("nan"),
                "cohen_kappa_ci": (float("nan"), float("nan")),
                "reading": "per theme",
            }
        )
    used = sorted({c for row in sets for s in row if s is not None for c in s})
    if result.items < FEW_ITEMS:
        result.warnings.append(f"few items ({result.items} < {FEW_ITEMS}): the coefficients and intervals are unstable")
    if not used:
        result.warnings.append("no theme was chosen: α and κ are undefined")
    for code in used:
        presence = presence_matrix(sets, code)
        name = themes.get(code, str(code))
        if len(coders) == 2:
            kappa = cohen_kappa(presence[:, 0], presence[:, 1])
            ci = _ci([cohen_kappa(presence[idx, 0], presence[idx, 1]) for idx in boots])
            statistic = "cohen_kappa"
        else:
            kappa = fleiss_kappa(presence)
            ci = _ci([fleiss_kappa(presence[idx]) for idx in boots])
            statistic = "fleiss_kappa"
        theme = DimensionAgreement(
            round=round_name,
            dimension=f"{dimension}={name}",
            coders=coders,
            items=len(sets),
            items_complete=complete,
            percent_agreement=percent_agreement(presence),
            fleiss_kappa=fleiss_kappa(presence),
            krippendorff_alpha=krippendorff_alpha(presence),
            gwet_ac1=gwet_ac1(presence, [0.0, 1.0]),
        )
        if len(coders) == 2:
            theme.pairs.append({"cohen_kappa": kappa})
        warnings = [
            w for w in _warnings(presence, coders, {0.0: "absent", 1.0: "present"}, theme) if not w.startswith("few")
        ]
        result.themes.append(
            {
                "round": round_name,
                "dimension": dimension,
                "code": code,
                "theme": name,
                "items_present": int(np.nansum(np.nanmax(presence, axis=1))) if len(presence) else 0,
                "statistic": statistic,
                "kappa": kappa,
                "kappa_ci": ci,
                "reading": landis_koch(kappa),
                "percent_agreement": theme.percent_agreement,
                "warnings": warnings,
            }
        )
        result.warnings.extend(f"theme {name}: {w}" for w in warnings)
    return result


def set_matrices(
    ratings: pd.DataFrame, coded: pd.DataFrame | None, multi: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[np.ndarray, list[str], dict[int, str]]]:
    """Per multi-label (round, dimension): items × coders code sets (an item a coder coded without any theme is
    the empty set, from `coded`: round, item_id, coder of valid codings), coders, and code → label."""
    out: dict[tuple[str, str], tuple[np.ndarray, list[str], dict[int, str]]] = {}
    for rnd, dim in sorted(multi):
        sub = ratings[(ratings["round"] == rnd) & (ratings["dimension"] == dim)] if not ratings.empty else ratings
        given: dict[tuple[int, str], set[int]] = {}
        for item_id, coder, code in sub[["item_id", "coder", "code"]].itertuples(index=False) if len(sub) else []:
            given.setdefault((int(item_id), str(coder)), set()).add(int(code))
        if coded is not None and not coded.empty:
            for item_id, coder in coded[coded["round"] == rnd][["item_id", "coder"]].itertuples(index=False):
                given.setdefault((int(item_id), str(coder)), set())
        coders = sorted({c for _, c in given})
        items = sorted({i for i, _ in given})
        if len(coders) < 2 or not items:
            continue
        sets = np.empty((len(items), len(coders)), dtype=object)
        row, column = {i: n for n, i in enumerate(items)}, {c: n for n, c in enumerate(coders)}
        for (item_id, coder), codes in given.items():
            sets[row[item_id], column[coder]] = frozenset(codes)
        labels = dict(zip(sub["code"].astype(int), sub["label"], strict=False)) if len(sub) else {}
        out[(rnd, dim)] = (sets, coders, labels)
    return out


def reference_name(round_name: str) -> str:
    """How a reference round's final codes appear as a coder (never a coder's own name: it has a colon)."""
    return f"final:{round_name}"


def against_reference(
    ratings: pd.DataFrame,
    finals: pd.DataFrame,
    reference: str,
    categories: dict[tuple[str, str], list[int]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[DimensionAgreement]:
    """Agreement of each coder of the rounds in `ratings` with the final codes in `finals` (a reference round),
    per dimension, on the items both coded: one two-rater result (coder × reference) per round, dimension, coder."""
    results: list[DimensionAgreement] = []
    if ratings.empty or finals.empty:
        return results
    ref = reference_name(reference)
    final_codes = finals.set_index(["dimension", "item_id"])["code"].astype(float)
    for (rnd, dim), (wide, labels) in matrices(ratings).items():
        for coder in [str(c) for c in wide.columns]:
            own = wide[coder].dropna()
            keys = [(dim, item) for item in own.index]
            theirs = final_codes.reindex(keys).to_numpy()
            matrix = np.column_stack([own.to_numpy(), theirs])
            labels_all = {**labels, **_labels_of(finals, dim)}
            cats = [float(c) for c in (categories or {}).get((rnd, dim), [])]
            result = agreement_for(matrix, [coder, ref], rnd, dim, cats, labels_all, n_boot=n_boot, seed=seed)
            if result.items:
                results.append(result)
    return results


def _labels_of(finals: pd.DataFrame, dimension: str) -> dict[float, str]:
    sub = finals[finals["dimension"] == dimension]
    return dict(zip(sub["code"].astype(float), sub["label"], strict=False))
