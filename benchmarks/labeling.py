"""Label Studio sync at scale against a locally started server: push 5,000 tasks, pull 10,000 annotations.

Prints seconds and HTTP requests for each, and for a one-request-per-task baseline measured in the same run
(extrapolated from a small slice). Target: ≤ 1 import request per 1,000 tasks pushed.

    INTEROP_LABEL_STUDIO_VENV=/path/to/.venv-labelstudio python -m benchmarks.labeling [--tasks 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from db.migrate import upgrade  # noqa: E402
from db.models.github import Issue  # noqa: E402
from db.models.labeling import Coder, LabelItem, LabelRound, LsProject, LsTask  # noqa: E402
from labeling.client import connect  # noqa: E402
from labeling.codebook import read_codebook  # noqa: E402
from labeling.labelstudio import choice_value  # noqa: E402
from labeling.projects import task_data  # noqa: E402
from labeling.pull import pull  # noqa: E402
from labeling.store import store_codebook  # noqa: E402
from labeling.sync import push  # noqa: E402
from tests.support.labeling import make_sample  # noqa: E402
from tests.support.labelstudio import LabelStudioServer  # noqa: E402

BASELINE_SLICE = 100


def shared_dir() -> Path:
    for cand in (os.environ.get("INTEROP_SHARED_DIR"), ROOT.parent / "shared", ROOT / "shared"):
        if cand and (Path(cand) / "codebook").is_dir():
            return Path(cand)
    raise SystemExit("set INTEROP_SHARED_DIR to the shared study data (for the codebook)")


def counted_sdk(url: str, token: str) -> tuple[Any, list[int]]:
    """A plain SDK client (the baselines and the stand-in coders) and a box counting its HTTP requests."""
    import httpx
    from label_studio_sdk import LabelStudio

    box = [0]

    def count(_request: httpx.Request) -> None:
        box[0] += 1

    http = httpx.Client(timeout=60.0, event_hooks={"request": [count]})
    return LabelStudio(base_url=url, api_key=token, httpx_client=http), box


def annotated(result_codes: tuple[int, int], coder_id: int) -> list[dict]:  # type: ignore[type-arg]
    symptom, cause = result_codes
    labels = {1: "Crash", 2: "Wrong Model"}, {4: "Tensor Shape Problem", 10: "Algorithmic Error"}
    return [
        {
            "result": [
                {
                    "from_name": "symptom",
                    "to_name": "body",
                    "type": "choices",
                    "value": {"choices": [choice_value(symptom, labels[0][symptom])]},
                },
                {
                    "from_name": "cause",
                    "to_name": "body",
                    "type": "choices",
                    "value": {"choices": [choice_value(cause, labels[1][cause])]},
                },
                {
                    "from_name": "component",
                    "to_name": "body",
                    "type": "choices",
                    "value": {"choices": [choice_value(1, "Node Conversion")]},
                },
            ],
            "completed_by": coder_id,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks pushed (and issues in the pull sample)")
    args = parser.parse_args()
    n = args.tasks
    workdir = Path(tempfile.mkdtemp(prefix="interop-bench-labeling-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url, "head")
    from db.engine import make_engine

    engine = make_engine(url)
    with Session(engine) as s:
        store_codebook(s, read_codebook(shared_dir() / "codebook" / "onnx-converter-failures.yaml"))
        s.commit()
    print(f"starting Label Studio (database {workdir / 'bench.db'}) …", flush=True)
    server = LabelStudioServer().start()
    rows: list[tuple[str, int, float, int]] = []
    try:
        conn = connect(server.url, server.token)
        client, baseline_requests = counted_sdk(server.url, server.token)  # coders' and baselines' raw calls

        # push: n issues to two coders without overlap = n tasks
        make_sample(engine, "bench-push", n, start=100_000)
        t0, r0 = time.perf_counter(), conn.request_count
        report = push(engine, conn, "bench-push", "bench-push", "alice,bob", overlap=0.0)
        rows.append(
            (
                "push (bulk import, ≤1,000 tasks per call)",
                sum(report.tasks_new.values()),
                time.perf_counter() - t0,
                conn.request_count - r0,
            )
        )

        # baseline: the same task data one `tasks.create` call at a time (a slice, extrapolated)
        scratch = client.projects.create(
            title="baseline", label_config=client.projects.get(id=report.projects["alice"]).label_config
        )
        with Session(engine) as s:
            coder = s.exec(select(Coder).where(Coder.name == "alice")).one()
            sample_tasks = s.exec(select(LsTask).limit(BASELINE_SLICE)).all()
            data = []
            for t in sample_tasks:
                item = s.get(LabelItem, t.item_id)
                issue = s.get(Issue, item.issue_id)
                data.append(task_data(issue, "pytorch/pytorch", item))
        t0, r0 = time.perf_counter(), baseline_requests[0]
        for d in data:
            client.tasks.create(project=scratch.id, data=d)
        per = (time.perf_counter() - t0) / len(data)
        rows.append(
            (
                f"baseline push: one call per task (×{n}/{len(data)})",
                n,
                per * n,
                (baseline_requests[0] - r0) * n // len(data),
            )
        )

        # pull: n issues pushed to both coders = 2n tasks; 2n annotations set up by re-importing annotated tasks
        make_sample(engine, "bench-pull", n, repository="onnx/tensorflow-onnx", start=200_000)
        t0, r0 = time.perf_counter(), conn.request_count
        report = push(engine, conn, "bench-pull", "bench-pull", "alice,bob", overlap=1.0)
        rows.append(
            (
                "push with full overlap (2 coders)",
                sum(report.tasks_new.values()),
                time.perf_counter() - t0,
                conn.request_count - r0,
            )
        )
        print("setting up annotations (not timed) …", flush=True)
        with Session(engine) as s:
            round_id = s.exec(select(LabelRound.id).where(LabelRound.name == "bench-pull")).one()
            for project in s.exec(select(LsProject).where(LsProject.round_id == round_id)).all():
                coder = s.get(Coder, project.coder_id)
                old = {t.ls_task_id: t for t in s.exec(select(LsTask).where(LsTask.project_id == project.id))}
                full = {int(t.id): t.data for t in client.tasks.list(project=project.ls_project_id, page_size=1000)}
                client.tasks.delete_all_tasks(id=project.ls_project_id)
                ordered = sorted(old)
                for b in range(0, len(ordered), 1000):
                    batch = ordered[b : b + 1000]
                    payload = [
                        {
                            "data": full[tid],
                            "annotations": annotated((1 + tid % 2, 4 if (tid // 3) % 2 else 10), coder.ls_user_id),
                        }
                        for tid in batch
                    ]
                    resp = client.projects.import_tasks(id=project.ls_project_id, request=payload, return_task_ids=True)
                    for tid, new_id in zip(batch, resp.task_ids, strict=True):
                        old[tid].ls_task_id = int(new_id)  # the benchmark's stand-in for coders' work
                        s.add(old[tid])
            s.commit()
        t0, r0 = time.perf_counter(), conn.request_count
        pulled = pull(engine, conn, "bench-pull")
        rows.append(
            (
                "pull (pages of 1,000 tasks with annotations)",
                pulled.counts["new"],
                time.perf_counter() - t0,
                conn.request_count - r0,
            )
        )
        for label in ("re-pull 3 s later, nothing changed", "re-pull again"):
            time.sleep(3)
            t0, r0 = time.perf_counter(), conn.request_count
            again = pull(engine, conn, "bench-pull")
            rows.append((label, again.counts["tasks_read"], time.perf_counter() - t0, conn.request_count - r0))

        # baseline: one `tasks.get` per task (a slice, extrapolated)
        with Session(engine) as s:
            ids = [t.ls_task_id for t in s.exec(select(LsTask).order_by(LsTask.id.desc()).limit(BASELINE_SLICE))]
        t0, r0 = time.perf_counter(), baseline_requests[0]
        for tid in ids:
            client.tasks.get(id=tid)
        per = (time.perf_counter() - t0) / len(ids)
        total = pulled.counts["new"]
        rows.append(
            (
                f"baseline pull: one call per task (×{total}/{len(ids)})",
                total,
                per * total,
                (baseline_requests[0] - r0) * total // len(ids),
            )
        )
    finally:
        server.stop()

    print(f"\n{'step':<52} {'tasks/annotations':>18} {'seconds':>9} {'requests':>9} {'req/1,000':>10}")
    for name, count, seconds, requests in rows:
        per_k = f"{requests / count * 1000:.2f}" if count else "–"
        print(f"{name:<52} {count:>18,} {seconds:>9.1f} {requests:>9,} {per_k:>10}")
    push_row, base_row = rows[0], rows[1]
    pull_row, pull_base = rows[3], rows[-1]
    print(
        f"\npush: {base_row[2] / push_row[2]:.0f}× faster and {base_row[3] / max(push_row[3], 1):.0f}× fewer "
        f"requests than one call per task; pull: {pull_base[2] / pull_row[2]:.1f}× faster, "
        f"{pull_base[3] / max(pull_row[3], 1):.0f}× fewer requests"
    )


if __name__ == "__main__":
    main()
