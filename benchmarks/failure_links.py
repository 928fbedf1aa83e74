"""How well failure messages find their upstream issue: precision@1 and recall@5 on a labelled set.

The labelled set (`tests/data/failure_links.csv`) holds real failure messages of the study's imported runs, each
with the coded issues (FailureAnalysis.xlsx, PilotStudy.xlsx) that report the same failure (label 1) or none of
them (label 0: negatives). The issues are loaded with the ordinary `label import-sheet` into a scratch SQLite
database (or read from `--database`), ranked by experiments.failure_links exactly as `experiment signatures`
does, and scored. Bootstrap intervals resample the queries with `--seed`.

    python -m benchmarks.failure_links [--seed 0] [--boot 1000] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.queries.failures import issues_for_linking  # noqa: E402
from experiments.failure_links import CONVERTER_REPOS, Ranker, failure_text  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "failure_links.csv"


@dataclass
class LinkScores:
    """The figures of one evaluation, and each query's top candidate (for reading the misses)."""

    queries: int
    positive_queries: int
    pairs: int
    precision_at_1: float
    recall_at_5: float
    #: precision@1 over the messages that have a labelled issue only
    precision_at_1_positive: float = float("nan")
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    top1: list[dict[str, Any]] = field(default_factory=list)


def load_labelled(path: Path = LABELLED) -> pd.DataFrame:
    """The labelled pairs: query, converter, message, repository, issue, label, why."""
    frame = pd.read_csv(path, dtype={"repository": str}, keep_default_na=False)
    frame["issue"] = pd.to_numeric(frame["issue"], errors="coerce").astype("Int64")
    return frame


def evaluate(issues: pd.DataFrame, labelled: pd.DataFrame, seed: int = 0, boot: int = 1000, top: int = 5) -> LinkScores:
    """precision@1: of the queries that get a candidate, the share whose first is a labelled issue (negatives'
    candidates are all wrong); recall@5: of the labelled (message, issue) pairs, the share in the first `top`."""
    ranker = Ranker(issues)
    hits1, found, top1 = [], [], []
    for query, group in labelled.groupby("query", sort=True):
        first = group.iloc[0]
        ranked = ranker.rank(failure_text(first["message"]), CONVERTER_REPOS.get(first["converter"], ()), top)
        got = [f"{r.repository}#{r.number}" for r in ranked.itertuples()]
        wanted = {f"{r.repository}#{r.issue}" for r in group.itertuples() if r.label == 1}
        if got:
            hits1.append((int(query), got[0] in wanted))
        found.extend((int(query), w in got) for w in sorted(wanted))
        top1.append({"query": int(query), "top1": got[0] if got else None, "labelled": sorted(wanted)})
    p1 = np.array([h for _, h in hits1], dtype=float)
    r5 = np.array([f for _, f in found], dtype=float)
    scores = LinkScores(
        queries=int(labelled["query"].nunique()),
        positive_queries=int(labelled.loc[labelled["label"] == 1, "query"].nunique()),
        pairs=int((labelled["label"] == 1).sum()),
        precision_at_1=float(p1.mean()) if len(p1) else float("nan"),
        recall_at_5=float(r5.mean()) if len(r5) else float("nan"),
        top1=top1,
    )
    positive = [h for q, h in hits1 if q in set(labelled.loc[labelled["label"] == 1, "query"])]
    scores.precision_at_1_positive = float(np.mean(positive)) if positive else float("nan")
    rng = np.random.default_rng(seed)
    queries = np.array(sorted(labelled["query"].unique()))
    by_query_p1 = {q: float(h) for q, h in hits1}
    by_query_r5: dict[int, list[float]] = {}
    for q, f in found:
        by_query_r5.setdefault(q, []).append(float(f))
    samples: dict[str, list[float]] = {"precision_at_1": [], "recall_at_5": []}
    for _ in range(boot):
        drawn = rng.choice(queries, size=len(queries), replace=True)
        p = [by_query_p1[q] for q in drawn if q in by_query_p1]
        r = [v for q in drawn for v in by_query_r5.get(q, [])]
        if p:
            samples["precision_at_1"].append(float(np.mean(p)))
        if r:
            samples["recall_at_5"].append(float(np.mean(r)))
    for name, values in samples.items():
        if values:
            low, high = np.percentile(values, [2.5, 97.5])
            scores.ci[name] = (float(low), float(high))
    return scores


def study_issues(artifact: Path, codebook: Path) -> pd.DataFrame:
    """The coded issues of the study, loaded by `label import-sheet` into a scratch SQLite database."""
    from typer.testing import CliRunner

    from cli.main import app
    from db.engine import make_engine

    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite:///{work}/links.db"
        steps = [
            ["db", "upgrade"],
            ["label", "codebook", "load", str(codebook)],
            ["label", "import-sheet", str(artifact / "failure-analysis" / "FailureAnalysis.xlsx")],
            ["label", "import-sheet", str(artifact / "failure-analysis" / "PilotStudy.xlsx")],
        ]
        for step in steps:
            done = CliRunner().invoke(app, step, env={"INTEROP_DATABASE_URL": url})
            if done.exit_code != 0:
                raise SystemExit(f"{' '.join(step)} failed: {done.output.strip()}")
        engine = make_engine(url)
        try:
            return issues_for_linking(engine, sorted({r for rs in CONVERTER_REPOS.values() for r in rs}))
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--database", help="read the issues from this database instead of importing the sheets")
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    args = parser.parse_args()
    shared = Path(os.environ.get("INTEROP_SHARED_DIR") or ROOT.parent / "shared")
    if args.database:
        from db.engine import make_engine

        issues = issues_for_linking(
            make_engine(args.database), sorted({r for v in CONVERTER_REPOS.values() for r in v})
        )
    else:
        issues = study_issues(shared / "data" / "paper-artifact", shared / "codebook" / "onnx-converter-failures.yaml")
    labelled = load_labelled(args.labelled)
    scores = evaluate(issues, labelled, seed=args.seed, boot=args.boot)
    print(
        f"labelled set: {scores.queries} failure messages ({scores.positive_queries} with a labelled issue, "
        f"{scores.queries - scores.positive_queries} negatives), {scores.pairs} (message, issue) pairs; "
        f"{len(issues)} candidate issues"
    )
    for name, label in (("precision_at_1", "precision@1"), ("recall_at_5", "recall@5")):
        low, high = scores.ci.get(name, (float("nan"), float("nan")))
        value = getattr(scores, name)
        print(f"{label}: {value:.3f} (95% bootstrap CI {low:.3f}–{high:.3f}, {args.boot} resamples, seed {args.seed})")
    share = scores.precision_at_1_positive
    print(f"precision@1 of the {scores.positive_queries} messages with a labelled issue: {share:.3f}")
    for row in scores.top1:
        mark = "ok" if row["top1"] in row["labelled"] else ("—" if not row["labelled"] else "miss")
        print(
            f"  query {row['query']:>2}: top-1 {row['top1']}  labelled {', '.join(row['labelled']) or 'none'}  [{mark}]"
        )


if __name__ == "__main__":
    main()
