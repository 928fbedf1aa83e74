"""How much the explorer's query functions cost over the bare SQL aggregate each one wraps, on big data.

Usage: python -m benchmarks.app [--issues 100000] [--runs 1000000] [--backends sqlite,postgresql]
                                [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--repeat 3]

Seeds a scratch database per backend (100,000 issues with 2 timeline events each, 1,000,000 conversion runs
when the experiments tables exist), then times every page's queries (the db/queries functions the pages
call, uncached) against the bare SQL that computes the same aggregate, fetched with the DBAPI cursor.
Prints the best-of-N seconds of each, the ratio, and whether a page stays under the targets (≤ 1.5× the
bare query, and < 2 s for the whole page on SQLite).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import IngestRun, Issue, IssueEvent, IssueSample, IssueSampleMember, Repository  # noqa: E402

T0 = datetime(2019, 1, 1, tzinfo=UTC)
REPOS = ("pytorch/pytorch", "onnx/tensorflow-onnx", "onnx/onnx", "microsoft/onnxruntime")
LABELS = ("module: onnx", "bug", "question", "enhancement", "pending on user response", "triaged")
CHUNK = 20_000


def seed_issues(engine: Engine, n: int) -> None:
    """`n` issues over 4 repositories and 6 years, 2 events each, a 1,000-issue sample, 200 ingest runs."""
    rnd = random.Random(7)
    with engine.begin() as conn:
        conn.execute(insert(Repository), [{"full_name": r, "first_seen_at": T0} for r in REPOS])
        repo_ids = [row[0] for row in conn.execute(text("SELECT id FROM repository ORDER BY id"))]
    issue_rows: list[dict[str, Any]] = []
    for i in range(n):
        created = T0 + timedelta(minutes=rnd.randrange(6 * 365 * 24 * 60))
        closed = rnd.random() < 0.7
        issue_rows.append(
            {
                "repository_id": repo_ids[i % len(repo_ids)],
                "number": i + 1,
                "title": f"export fails for model {i}",
                "body": "Converting the model raises an error. " * 5,
                "state": "closed" if closed else "open",
                "labels": rnd.sample(LABELS, rnd.randrange(0, 3)),
                "author": f"user{rnd.randrange(5000)}",
                "created_at": created,
                "updated_at": created + timedelta(days=3),
                "closed_at": created + timedelta(days=3) if closed else None,
                "comment_count": rnd.randrange(20),
                "html_url": f"https://github.com/x/y/issues/{i + 1}",
                "hydrated": True,
            }
        )
    with engine.begin() as conn:
        for start in range(0, n, CHUNK):
            conn.execute(insert(Issue), issue_rows[start : start + CHUNK])
        ids = [row[0] for row in conn.execute(text("SELECT id FROM issue ORDER BY id"))]
        events = []
        for issue_id, row in zip(ids, issue_rows, strict=True):
            events.append(
                {
                    "issue_id": issue_id,
                    "event_key": f"{issue_id}-l",
                    "event": "labeled",
                    "actor": "bot",
                    "commit_id": None,
                    "created_at": row["created_at"],
                }
            )
            if row["closed_at"]:
                events.append(
                    {
                        "issue_id": issue_id,
                        "event_key": f"{issue_id}-c",
                        "event": "closed",
                        "actor": None,
                        "commit_id": f"{issue_id:040x}",
                        "created_at": row["closed_at"],
                    }
                )
            else:
                events.append(
                    {
                        "issue_id": issue_id,
                        "event_key": f"{issue_id}-m",
                        "event": "mentioned",
                        "actor": None,
                        "commit_id": None,
                        "created_at": row["updated_at"],
                    }
                )
            if len(events) >= CHUNK:
                conn.execute(insert(IssueEvent), events)
                events = []
        if events:
            conn.execute(insert(IssueEvent), events)
        conn.execute(insert(IssueSample), [{"name": "pilot", "seed": 42, "rule": {}, "created_at": T0}])
        sample_id = conn.execute(text("SELECT id FROM issue_sample")).scalar_one()
        picked = rnd.sample(ids, min(1000, len(ids)))
        conn.execute(
            insert(IssueSampleMember),
            [{"sample_id": sample_id, "issue_id": iid, "position": p} for p, iid in enumerate(picked)],
        )
        runs = []
        for k in range(200):
            status = "failed" if k % 7 == 0 else "ok"
            runs.append(
                {
                    "kind": ("github-mine", "survey-import", "campaign")[k % 3],
                    "parameters": {},
                    "started_at": T0 + timedelta(hours=k),
                    "finished_at": T0 + timedelta(hours=k, minutes=3),
                    "status": status,
                    "counts": {"n": k},
                    "error": "Timeout" if status == "failed" else None,
                }
            )
        conn.execute(insert(IngestRun), runs)


CONVERTERS = (
    ("torch.onnx", "torchscript", "nnsmith-torch"),
    ("torch.onnx", "dynamo", "nnsmith-torch"),
    ("tf2onnx", "from_function", "nnsmith-tensorflow"),
)
OPERATORS = (
    "Conv2d",
    "ReLU",
    "Linear",
    "Tanh",
    "Add",
    "Mul",
    "Reshape",
    "MaxPool2d",
    "Softmax",
    "Erf",
    "Tan",
    "LeakyReLU",
    "BatchNorm2d",
    "Concat",
    "Slice",
)


def seed_runs(engine: Engine, n_runs: int) -> None:
    """`n_runs` conversion runs in 2 campaigns: one model per 3 runs, 1 output per compared run."""
    from db.models.experiments import Campaign, ConversionRun, ModelOperator, ModelUnderTest, RunOutput

    rnd = random.Random(11)
    with engine.begin() as conn:
        conn.execute(
            insert(Campaign),
            [
                {"name": n, "kind": "live", "spec": {}, "environment": {}, "created_at": T0}
                for n in ("bench-a", "bench-b")
            ],
        )
        campaign_ids = [r[0] for r in conn.execute(text("SELECT id FROM campaign ORDER BY id"))]
    n_models = -(-n_runs // len(CONVERTERS))
    started = time.perf_counter()
    with engine.begin() as conn:
        operators = [rnd.sample(OPERATORS, 4) for _ in range(n_models)]
        for start in range(0, n_models, CHUNK):
            conn.execute(
                insert(ModelUnderTest),
                [
                    {
                        "model_key": f"k{m}",
                        "source": CONVERTERS[m % 2 * 2][2],
                        "framework": "torch",
                        "name": f"m{m}",
                        "params": {},
                        "seed": m,
                        "node_count": 5 * (1 + m % 20),
                        "operators": operators[m],
                        "campaign_id": campaign_ids[m % 2],
                        "created_at": T0,
                    }
                    for m in range(start, min(start + CHUNK, n_models))
                ],
            )
        first_model = conn.execute(text("SELECT min(id) FROM model")).scalar_one()
        for start in range(0, n_models, CHUNK):
            conn.execute(
                insert(ModelOperator),
                [
                    {"model_id": first_model + m, "operator": op}
                    for m in range(start, min(start + CHUNK, n_models))
                    for op in operators[m]
                ],
            )
        statuses = ("passed",) * 6 + ("mismatch",) * 2 + ("failed", "crash", "timeout")
        stages = ("export", "onnx_check", "ort_session", "ort_run")
        run_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM conversion_run")).scalar_one()
        runs, outputs = [], []
        for r in range(n_runs):
            m = r // len(CONVERTERS)
            converter, exporter, _ = CONVERTERS[r % len(CONVERTERS)]
            status = rnd.choice(statuses)
            compared = status in ("passed", "mismatch")
            run_id += 1
            runs.append(
                {
                    "id": run_id,
                    "campaign_id": campaign_ids[m % 2],
                    "model_id": first_model + m,
                    "converter": converter,
                    "converter_version": "1",
                    "exporter": exporter,
                    "opset": (14, 17)[r % 2],
                    "produced_opset": (18 if exporter == "dynamo" else (14, 17)[r % 2]) if compared else None,
                    "node_count": 5 * (1 + m % 20),
                    "input_seed": 0,
                    "n_inputs": 2,
                    "status": status,
                    "stage": None if compared else rnd.choice(stages),
                    "error_class": None if compared else "onnxruntime.NOT_IMPLEMENTED",
                    "message": None,
                    "durations": {},
                    "atol": 1e-5,
                    "rtol": 0.0,
                    "finished_at": T0,
                }
            )
            if compared:
                need = 10.0 ** rnd.uniform(-9, -3) if status == "passed" else 10.0 ** rnd.uniform(-4, 2)
                outputs.append(
                    {
                        "run_id": run_id,
                        "input_index": 0,
                        "output_index": 0,
                        "shape_match": True,
                        "dtype_match": True,
                        "n_elements": 100,
                        "max_abs_diff": need,
                        "needed_atol": {"0.0": need, "0.001": need / 2},
                        "nonfinite_mismatch": 0,
                    }
                )
            if len(runs) >= CHUNK:
                conn.execute(insert(ConversionRun), runs)
                conn.execute(insert(RunOutput), outputs)
                runs, outputs = [], []
        if runs:
            conn.execute(insert(ConversionRun), runs)
            conn.execute(insert(RunOutput), outputs)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setval('conversion_run_id_seq', (SELECT max(id) FROM conversion_run))"))
    print(
        f"  seeded {n_runs:,} conversion runs ({n_models:,} models) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bare(engine: Engine, sql: str | list[str]) -> Callable[[], Any]:
    """The bare aggregate(s): each SQL string through the DBAPI cursor, rows fetched, nothing else."""
    statements = [sql] if isinstance(sql, str) else sql

    def run() -> Any:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            rows = []
            for statement in statements:
                cur.execute(statement)
                rows.append(cur.fetchall())
            cur.close()
            return rows
        finally:
            raw.close()

    return run


def month_sql(dialect: str, column: str) -> str:
    return (
        f"to_char(date_trunc('month', {column}), 'YYYY-MM')"
        if dialect == "postgresql"
        else f"strftime('%Y-%m', {column})"
    )


def page_cases(engine: Engine) -> list[tuple[str, str, Callable[[], Any], str | list[str]]]:
    """(page, query, the db/queries call, the bare SQL it wraps)."""
    from db.queries import issues as issues_q
    from db.queries import overview
    from db.queries.issues import IssueFilter

    d = engine.dialect.name
    from sqlalchemy import inspect

    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    label_any = (
        "i.labels ?| array['question']"
        if d == "postgresql"
        else "EXISTS (SELECT 1 FROM json_each(i.labels) WHERE value IN ('question'))"
    )
    label_values = (
        "SELECT DISTINCT value FROM issue, jsonb_array_elements_text(issue.labels) AS value ORDER BY 1"
        if d == "postgresql"
        else "SELECT DISTINCT j.value FROM issue, json_each(issue.labels) AS j ORDER BY 1"
    )
    every, mined = IssueFilter(), "WHERE i.hydrated"
    summary_sql = (
        "SELECT r.full_name, count(*), sum(CASE WHEN i.state='closed' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN EXISTS (SELECT 1 FROM issue_event e WHERE e.issue_id = i.id AND e.commit_id IS NOT NULL) "
        "THEN 1 ELSE 0 END), sum(CASE WHEN EXISTS (SELECT 1 FROM issue_fix_link f WHERE f.issue_id = i.id "
        "AND f.rule_version = 'study-v1' AND f.fix_linked) THEN 1 ELSE 0 END) "
        "FROM issue i JOIN repository r ON r.id = i.repository_id {where} GROUP BY r.full_name"
    )
    cases = [
        (
            "Overview",
            "rows per table",
            lambda: overview.area_counts(engine),
            " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables),
        ),
        (
            "Overview",
            "freshness",
            lambda: overview.miner_freshness(engine),
            "SELECT kind, count(*), max(CASE WHEN status='ok' THEN finished_at END), "
            "max(CASE WHEN status='failed' THEN finished_at END) FROM ingest_run GROUP BY kind",
        ),
        (
            "Overview",
            "recent runs",
            lambda: overview.recent_runs(engine),
            "SELECT * FROM ingest_run ORDER BY started_at DESC, id DESC LIMIT 20",
        ),
        (
            "Issues",
            "filter options",
            lambda: issues_q.filter_options(engine),
            [
                "SELECT full_name FROM repository ORDER BY full_name",
                "SELECT DISTINCT state FROM issue",
                "SELECT name FROM issue_sample ORDER BY name",
                "SELECT DISTINCT rule_version FROM issue_fix_link",
                label_values,
            ],
        ),
        ("Issues", "summary", lambda: issues_q.issue_summary(engine, every), summary_sql.format(where=mined)),
        (
            "Issues",
            "over time",
            lambda: issues_q.issues_over_time(engine, every),
            [
                f"SELECT {month_sql(d, f'i.{c}')} AS m, r.full_name, count(*) FROM issue i JOIN repository r "
                f"ON r.id = i.repository_id WHERE i.{c} IS NOT NULL AND i.hydrated GROUP BY m, r.full_name"
                for c in ("created_at", "closed_at")
            ],
        ),
        (
            "Issues",
            "list page",
            lambda: issues_q.issue_list(engine, every, limit=50),
            "SELECT r.full_name, i.number, i.title, i.state, i.state_reason, i.labels, i.author, i.created_at, "
            "i.updated_at, i.closed_at, i.comment_count, f.fix_linked, i.hydrated, i.html_url FROM issue i "
            "JOIN repository r ON r.id = i.repository_id LEFT JOIN issue_fix_link f ON f.issue_id = i.id "
            f"AND f.rule_version = 'study-v1' {mined} ORDER BY i.created_at DESC, i.number DESC, i.id DESC LIMIT 50",
        ),
        (
            "Issues",
            "label filter",
            lambda: issues_q.issue_summary(engine, IssueFilter(labels=("question",))),
            summary_sql.format(where=f"{mined} AND {label_any}"),
        ),
    ]
    from db.queries import experiments as xq

    done = "('passed','mismatch')"
    needed = (
        "(o.needed_atol ->> '0.0')::float"
        if d == "postgresql"
        else "CAST(json_extract(o.needed_atol, '$.\"0.0\"') AS REAL)"
    )
    bad = "max(CASE WHEN o.shape_match AND o.dtype_match AND o.nonfinite_mismatch = 0 THEN 0 ELSE 1 END) AS bad"
    if d == "postgresql":
        per_run = (
            f"SELECT r.id, r.converter, r.status, p.worst, p.bad, p.unknown FROM (SELECT o.run_id, "
            f"max({needed}) AS worst, {bad}, max(CASE WHEN {needed} IS NULL THEN 1 ELSE 0 END) AS unknown "
            f"FROM run_output o GROUP BY o.run_id) p JOIN conversion_run r ON r.id = p.run_id "
            f"WHERE r.status IN {done}"
        )
    else:  # as the query function does on SQLite: the JSON number read once, 'u' (text sorts last) when missing
        per_run = (
            f"SELECT r.id, r.converter, r.status, CASE WHEN typeof(p.top) = 'text' THEN NULL ELSE p.top END "
            f"AS worst, p.bad, CASE WHEN typeof(p.top) = 'text' THEN 1 ELSE 0 END AS unknown FROM (SELECT "
            f"o.run_id, max(coalesce({needed}, 'u')) AS top, {bad} FROM run_output o GROUP BY o.run_id) p "
            f"JOIN conversion_run r ON r.id = p.run_id WHERE r.status IN {done}"
        )
    cases += [
        (
            "Experiments",
            "campaigns",
            lambda: xq.campaigns(engine),
            [
                "SELECT campaign_id, status, count(*) FROM conversion_run GROUP BY campaign_id, status",
                "SELECT * FROM campaign ORDER BY created_at DESC",
            ],
        ),
        (
            "Experiments",
            "outcomes",
            lambda: xq.outcome_counts(engine),
            "SELECT converter, exporter, node_count, produced_opset, opset, status, count(*) FROM conversion_run "
            "GROUP BY converter, exporter, node_count, produced_opset, opset, status",
        ),
        (
            "Experiments",
            "failure stages",
            lambda: xq.failure_stages(engine),
            f"SELECT converter, status, stage, error_class, count(*) FROM conversion_run WHERE status NOT IN {done} "
            "GROUP BY converter, status, stage, error_class",
        ),
        (
            "Experiments",
            "tolerance bins",
            lambda: xq.tolerance_buckets(engine, rtol=0.0),
            [
                "SELECT converter, status, CASE WHEN bad = 1 THEN 'x' WHEN unknown = 1 THEN 'u' "
                "WHEN worst <= 0 THEN '0' "
                + " ".join(f"WHEN worst <= 1e{e} THEN '{e}'" for e in xq.DECADES)
                + f" ELSE 'more' END AS b, count(*) FROM ({per_run}) x GROUP BY converter, status, b",
                f"SELECT converter, status, count(*) FROM conversion_run WHERE status IN {done} "
                "GROUP BY converter, status",
            ],
        ),
        (
            "Experiments (on demand)",
            "per operator",
            lambda: xq.operator_rates(engine),
            "SELECT o.operator, r.converter, r.exporter, count(*), "
            f"sum(CASE WHEN r.status NOT IN {done} THEN 1 ELSE 0 END), "
            "sum(CASE WHEN r.status = 'mismatch' THEN 1 ELSE 0 END) "
            "FROM model_operator o JOIN conversion_run r ON r.model_id = o.model_id "
            "GROUP BY o.operator, r.converter, r.exporter",
        ),
        (
            "Experiments",
            "run picker",
            lambda: xq.runs(engine, limit=200),
            "SELECT * FROM run_outcomes ORDER BY run_id DESC LIMIT 200",
        ),
    ]
    return cases


def bench(url: str, n_issues: int, repeat: int, n_runs: int = 0) -> list[tuple[str, str, float, float]]:
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    seed_issues(engine, n_issues)
    print(f"  seeded {n_issues:,} issues in {time.perf_counter() - started:.1f} s", flush=True)
    if n_runs:
        seed_runs(engine, n_runs)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    out = []
    for page, name, ours, sql in page_cases(engine):
        ours()  # warm caches, compile statements
        bare_fn = bare(engine, sql)
        bare_fn()
        t_ours, t_bare = best_of(ours, repeat), best_of(bare_fn, repeat)
        out.append((page, name, t_ours, t_bare))
        ratio = t_ours / t_bare if t_bare else float("nan")
        print(f"  {page:<12} {name:<16} ours {t_ours:8.3f} s   bare {t_bare:8.3f} s   ×{ratio:5.2f}", flush=True)
    engine.dispose()
    return out


def summarize(backend: str, rows: list[tuple[str, str, float, float]]) -> None:
    pages: dict[str, list[float]] = {}
    for page, _, ours, bare_s in rows:
        pages.setdefault(page, [0.0, 0.0])
        pages[page][0] += ours
        pages[page][1] += bare_s
    for page, (ours, bare_s) in pages.items():
        ratio = ours / bare_s if bare_s else float("nan")
        # a few milliseconds of DataFrame building dominate tiny queries: 20 ms of overhead also counts as met
        ok = (ratio <= 1.5 or ours - bare_s < 0.02) and (backend != "sqlite" or ours < 2.0)
        print(
            f"  {backend:<10} page {page:<12} ours {ours:7.3f} s  bare {bare_s:7.3f} s  ×{ratio:5.2f}  "
            f"{'meets' if ok else 'MISSES'} the target"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    default_pg = os.environ.get("INTEROP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg-url", default=default_pg)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with ExitStack() as stack:
        for backend in args.backends.split(","):
            print(f"{backend}:", flush=True)
            if backend == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
                url = f"sqlite:///{tmp}/bench.db"
            else:
                os.environ.setdefault("INTEROP_TEST_POSTGRES_URL", args.pg_url)
                from tests.support.databases import scratch_postgres_database

                url = stack.enter_context(scratch_postgres_database("interop_bench"))
            results[backend] = bench(url, args.issues, args.repeat, args.runs)
    print("summary (sum of each page's queries, best of", args.repeat, "):")
    for backend, rows in results.items():
        summarize(backend, rows)


if __name__ == "__main__":
    main()
