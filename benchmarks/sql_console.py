"""The SQL console's limits, measured: how soon a runaway query stops, and memory under a row cap.

Usage: python -m benchmarks.sql_console [--backends sqlite,postgresql] [--repeat 2]
                                        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Per backend (a scratch SQLite file; on PostgreSQL a scratch database and a reader made by `create_reader`):
- stop: a query that runs ≥ 10× a 1 s limit (SQLite: one VM step of ~13 s; PostgreSQL: pg_sleep(10)),
  seconds until the console gave up, and the overshoot over the limit (target: < 1 s);
- memory: a 3,000,000-row query (comment-led, the case that used to load everything) capped at 10 and at
  10,000 rows, measured in a fresh process (benchmarks.rss_probe): peak resident size above the baseline
  before the query, and the SQLite worker's peak (target: < 100 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from db.engine import normalize_url  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.reader import create_reader, drop_reader  # noqa: E402
from db.readonly import QueryTimeout, run_read_only  # noqa: E402

SLOW = {
    "sqlite": "SELECT printf('%.*c', 300000, 'a') LIKE '%' || printf('%.*c', 30000, 'a') || 'b'",
    "postgresql": "SELECT pg_sleep(10)",
}
MANY = {
    "sqlite": "/* comment-led */ WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
    "SELECT x, hex(randomblob(16)) AS h FROM c",
    "postgresql": "/* comment-led */ SELECT g, md5(g::text) AS h FROM generate_series(1, 3000000) g",
}


def measure(backend: str, url: str, repeat: int) -> None:
    stops = []
    for _ in range(repeat):
        started = time.monotonic()
        with suppress(QueryTimeout):
            run_read_only(url, SLOW[backend], timeout_s=1)
        stops.append(time.monotonic() - started)
    print(
        f"{backend}: stop after {min(stops):.2f}–{max(stops):.2f} s with a 1 s limit (overshoot {max(stops) - 1:.2f} s)"
    )
    for cap in (10, 10_000):
        grown, children = [], []
        for _ in range(repeat):
            probe = subprocess.run(
                [sys.executable, "-m", "benchmarks.rss_probe", url, str(cap), MANY[backend]],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            figures = json.loads(probe.stdout)
            grown.append(figures["peak_mb"] - figures["baseline_mb"])
            children.append(figures["children_peak_mb"])
        print(
            f"{backend}: 3,000,000 rows capped at {cap:,}: +{min(grown):.1f}–{max(grown):.1f} MB above the baseline"
            + (f", worker peak {max(children):.1f} MB" if backend == "sqlite" else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        with ExitStack() as stack:
            if backend == "sqlite":
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                url = f"sqlite:///{folder / 'bench.db'}"
                upgrade(url, "head")
            else:
                admin = normalize_url(args.pg_url)
                name = f"interop_bench_{uuid.uuid4().hex[:8]}"
                engine = create_engine(admin, isolation_level="AUTOCOMMIT")
                with engine.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))

                def drop(engine=engine, name=name) -> None:  # type: ignore[no-untyped-def]
                    with engine.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    engine.dispose()

                stack.callback(drop)
                database = make_url(admin).set(database=name)
                upgrade(database.render_as_string(hide_password=False), "head")
                role = f"interop_bench_reader_{uuid.uuid4().hex[:8]}"
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                url = create_reader(database, role, passfile=folder / "pgpass").url
                stack.callback(drop_reader, database, role)
            measure(backend, url, args.repeat)


if __name__ == "__main__":
    main()
