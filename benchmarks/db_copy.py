"""`interop db copy` throughput: rows per second for a database of 1,000,000 conversion runs, both directions.

Usage: python -m benchmarks.db_copy [--runs 1000000] [--batch 10000]
                                    [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A scratch SQLite file gets one campaign, 1,000 models and RUNS conversion runs (every column filled the way a
campaign fills it: JSON durations and graphs, UTC times, failures with messages), written with the models'
column types. It is copied into a scratch PostgreSQL database at the newest revision (copy, sequence reset,
read-back checksum of every table) and from there into a second SQLite file; each direction prints rows,
seconds and rows per second, overall and for conversion_run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import Session  # noqa: E402

from db.copy import copy_database  # noqa: E402
from db.engine import make_engine, normalize_url  # noqa: E402
from db.migrate import upgrade  # noqa: E402

MODELS = 1_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = ("passed", "passed", "passed", "mismatch", "failed", "crash")


def seed(url: str, runs: int, chunk: int = 50_000) -> None:
    """One campaign, MODELS models and `runs` conversion runs, inserted in chunks through the models' types."""
    from db.models.experiments import Campaign, ConversionRun, ModelUnderTest

    engine = make_engine(url)
    with Session(engine) as session:  # the few parents through the models (their defaults apply)
        session.add(Campaign(id=1, name="bench", spec={"runs": runs}, created_at=T0))
        for m in range(MODELS):
            session.add(
                ModelUnderTest(
                    id=m + 1,
                    model_key=f"{m:064x}",
                    source="nnsmith-torch",
                    framework="torch",
                    name=f"m{m}",
                    seed=m,
                    node_count=5 + m % 4 * 5,
                    operators=["Conv2d", "ReLU", "Linear"][: 1 + m % 3],
                    params={"seed": m},
                    campaign_id=1,
                    created_at=T0,
                )
            )
        session.commit()
    with engine.begin() as conn:
        for start in range(0, runs, chunk):
            rows = []
            for i in range(start, min(start + chunk, runs)):
                status = STATUSES[i % len(STATUSES)]
                failed = status in ("failed", "crash")
                rows.append(
                    {
                        "id": i + 1,
                        "campaign_id": 1,
                        "model_id": i % MODELS + 1,
                        "model_hash": f"{i % MODELS:064x}",
                        "converter": "torch.onnx" if i % 2 else "tf2onnx",
                        "converter_version": "2.13.0",
                        "exporter": "torchscript" if i % 2 else "from_function",
                        "registry_name": "torch.onnx-torchscript" if i % 2 else "tf2onnx",
                        "opset": 14 + i % 4,
                        "produced_opset": None if failed else 14 + i % 4,
                        "onnx_ir_version": None if failed else 8,
                        "node_count": 5 + i % 4 * 5,
                        "input_seed": i,
                        "n_inputs": 3,
                        "status": status,
                        "stage": "ort_session" if failed else None,
                        "error_class": "onnxruntime.NOT_IMPLEMENTED" if failed else None,
                        "message": f"Could not find an implementation for Op{i % 50}" if failed else None,
                        "durations": {"export": 0.12 + i % 7 / 100, "ort_run": 0.01},
                        "peak_rss_mb": 300.0 + i % 100,
                        "onnx_graph": None if failed else [["Conv", []], ["Relu", [0]]],
                        "atol": 1e-4,
                        "rtol": 1e-3,
                        "parameters": {"seed": i % MODELS, "opset": 14 + i % 4},
                        "finished_at": T0 + timedelta(seconds=i),
                    }
                )
            conn.execute(insert(ConversionRun.__table__), rows)
    engine.dispose()


def report(label: str, copy) -> None:  # type: ignore[no-untyped-def]
    runs = next(t for t in copy.tables if t.name == "conversion_run")
    print(
        f"{label}: {copy.rows:,} rows in {copy.seconds:.1f} s = {copy.rows_per_second:,.0f} rows/s "
        f"(conversion_run: {runs.rows:,} rows in {runs.seconds:.1f} s = {runs.rows / runs.seconds:,.0f} rows/s, "
        "including the read-back checksum)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        source, back = f"sqlite:///{folder / 'source.db'}", f"sqlite:///{folder / 'back.db'}"
        upgrade(source, "head")
        upgrade(back, "head")
        started = time.perf_counter()
        seed(source, args.runs)
        print(f"seeded {args.runs:,} runs into SQLite in {time.perf_counter() - started:.1f} s", flush=True)

        admin = normalize_url(args.pg_url)
        name = f"interop_bench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

        stack.callback(drop)
        pg = make_url(admin).set(database=name).render_as_string(hide_password=False)
        upgrade(pg, "head")
        report("SQLite → PostgreSQL", copy_database(source, pg, batch=args.batch))
        report("PostgreSQL → SQLite", copy_database(pg, back, batch=args.batch))


if __name__ == "__main__":
    main()
