"""The typed messages of a campaign: driver ↔ isolated worker over a pipe, and worker pool → driver as events.

Frozen dataclasses at module level, so they pickle through the worker's pipe and back from Dask workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.outcomes import Stage
from experiments.results import ModelInfo, RunResult

#: index of the model itself in `StageStarted.run` (its runs are 0, 1, …)
MODEL = -1

# --- driver → worker ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartJob:
    """Run every conversion of one model job."""

    job: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """Exit after the current job."""


# --- worker → driver ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The worker imported its frameworks and waits for jobs."""

    pid: int


@dataclass(frozen=True)
class StageStarted:
    """Run `run` (MODEL: the model itself) entered `stage`: a worker lost now is charged to it."""

    run: int
    stage: Stage


@dataclass(frozen=True)
class ModelReady:
    """The job's model was generated or loaded."""

    info: ModelInfo


@dataclass(frozen=True)
class ModelFailed:
    """The job's model could not be generated or loaded: every run of the job ends with this result."""

    result: RunResult


@dataclass(frozen=True)
class RunFinished:
    """Run `run` of the job ended with `result`."""

    run: int
    result: RunResult


@dataclass(frozen=True)
class JobDone:
    """Every run of the job has reported."""


WorkerMessage = Ready | StageStarted | ModelReady | ModelFailed | RunFinished | JobDone

# --- worker pool → campaign driver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEvent:
    """`job`'s model was generated or loaded."""

    job: dict[str, Any]
    info: ModelInfo


@dataclass(frozen=True)
class ModelFailedEvent:
    """`job`'s model failed: each of its runs is stored with `result`."""

    job: dict[str, Any]
    result: RunResult


@dataclass(frozen=True)
class RunEvent:
    """One planned run of `job` ended."""

    job: dict[str, Any]
    run: dict[str, Any]
    result: RunResult


Event = ModelEvent | ModelFailedEvent | RunEvent
