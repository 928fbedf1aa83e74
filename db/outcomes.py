"""The vocabulary of a conversion run, defined once: its outcomes and the stages of its pipeline.

Plain enums with no database import, so the isolated worker process, the driver, the store, the read model and
the app share them (the experiments package depends on db, never the reverse).
"""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    """How a conversion run ended; `passed`/`mismatch` are verdicts recomputed by `rescore`."""

    passed = "passed"
    mismatch = "mismatch"
    failed = "failed"  # a Python exception at `stage`
    crash = "crash"  # the worker died (segfault, abort) during `stage`
    timeout = "timeout"  # the driver killed the worker after the per-run time limit
    oom = "oom"  # the worker went past the memory limit

    @property
    def judged(self) -> bool:
        """True for the verdicts of a compared run (passed, mismatch), False for the failures."""
        return self in JUDGED


class Stage(StrEnum):
    """The pipeline of one conversion run, in order; a failed run names the stage it stopped in."""

    generate = "generate"
    load = "load"
    export = "export"
    onnx_check = "onnx_check"
    ort_session = "ort_session"
    ort_run = "ort_run"
    compare = "compare"

    @classmethod
    def of_model(cls, content_hash: str | None) -> Stage:
        """The model's own stage: a model generated before (it has a content hash) is loaded, else generated."""
        return cls.load if content_hash else cls.generate


#: every outcome, in display order (the app's colours, the analyses' columns, the CLI's choices)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in RunOutcome)
#: the outcomes of a run that was compared: a verdict at some tolerance
JUDGED: frozenset[RunOutcome] = frozenset({RunOutcome.passed, RunOutcome.mismatch})
#: the outcomes of a run that got no verdict
FAILURES: tuple[str, ...] = tuple(o.value for o in RunOutcome if o not in JUDGED)

#: rtol values whose exact verdict can be recomputed for any atol (each output stores `needed_atol[rtol_key]`)
RTOL_GRID: tuple[float, ...] = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def rtol_key(rtol: float) -> str:
    """The key of `rtol` in a stored output's `needed_atol` object ("0.0", "1e-05", …)."""
    return repr(float(rtol))
