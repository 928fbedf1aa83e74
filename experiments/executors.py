"""Where model jobs execute: a local pool of isolated workers, or Dask workers that each keep their own.

Either way results come back to the driver as typed events (`experiments.messages`); Dask workers never see the
database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from experiments.isolation import PoolStats, WorkerOptions, WorkerPool
from experiments.messages import Event
from experiments.spec import CampaignSpec


class LocalExecutor:
    """N isolated workers in this machine, fed by the driver."""

    def __init__(self, workers: int, options: WorkerOptions) -> None:
        self.workers, self.options = workers, options
        self.stats = PoolStats()

    def run(self, jobs: list[dict[str, Any]], on_event: Callable[[Event], None]) -> int:
        if not jobs:
            return 0
        with WorkerPool(min(self.workers, len(jobs)), self.options) as pool:
            self.stats = pool.stats
            pool.run(jobs, on_event)
            return pool.replaced


_DASK_POOL: dict[tuple[WorkerOptions, str], WorkerPool] = {}


def run_job_on_dask_worker(job: dict[str, Any], options: WorkerOptions) -> tuple[list[Event], int]:
    """A Dask task: run one model job in this Dask worker's own isolated worker process; return its events."""
    key = (options, job["framework"])
    pool = _DASK_POOL.get(key)
    if pool is None:
        pool = _DASK_POOL[key] = WorkerPool(1, options)
    before = pool.replaced
    events: list[Event] = []
    pool.run([job], events.append)
    return events, pool.replaced - before


class DaskExecutor:
    """Jobs as Dask tasks on a LocalCluster (`local`) or an existing scheduler (`tcp://HOST:8786`)."""

    def __init__(self, address: str, workers: int, options: WorkerOptions) -> None:
        self.address, self.workers, self.options = address, workers, options

    def run(self, jobs: list[dict[str, Any]], on_event: Callable[[Event], None]) -> int:
        if not jobs:
            return 0
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.address == "local":
            cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
            )
            client = Client(cluster)
        else:
            client = Client(self.address)
        replaced = 0
        try:
            futures = [client.submit(run_job_on_dask_worker, job, self.options, pure=False) for job in jobs]
            for future in as_completed(futures):
                events, n = future.result()
                replaced += n
                for event in events:
                    on_event(event)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return replaced


def make_executor(spec: CampaignSpec, options: WorkerOptions) -> LocalExecutor | DaskExecutor:
    if spec.dask:
        return DaskExecutor(spec.dask, spec.workers, options)
    return LocalExecutor(spec.workers, options)
