"""Peak memory of one capped console query, measured in a fresh process (pytest's own memory would blur it).

`python -m benchmarks.rss_probe URL CAP SQL` prints JSON: the process's resident size before the query
(after the imports and a warm-up query), its peak during the query (the peak is reset first, so passing peaks
of the imports do not count), and the peak of its child processes (the SQLite worker), in MB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time


def _status_mb(field: str, pid: str = "self") -> float:
    """A memory figure of /proc/PID/status (VmRSS: now, VmHWM: peak), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _reset_peak() -> bool:
    """Start the peak (VmHWM) afresh, so imports' passing peaks are not counted (Linux clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _child_peaks() -> list[float]:
    """Record the peak RSS (VmHWM, MB) of every process db.readonly starts (the SQLite worker), while it runs."""
    import db.readonly

    peaks: list[float] = []

    class Watched(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            index = len(peaks)
            peaks.append(0.0)
            threading.Thread(target=self._watch, args=(index,), daemon=True).start()

        def _watch(self, index: int) -> None:
            while self.poll() is None:
                try:
                    peaks[index] = max(peaks[index], _status_mb("VmHWM", str(self.pid)))
                except (OSError, RuntimeError):
                    return
                time.sleep(0.005)

    db.readonly.subprocess.Popen = Watched  # type: ignore[misc]
    return peaks


def main() -> None:
    url, cap, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from db.readonly import run_read_only

    children = _child_peaks()

    run_read_only(url, "SELECT 1 AS warm", row_cap=cap)  # imports done, connection code paths loaded
    fresh = _reset_peak()
    baseline = _status_mb("VmRSS")
    result = run_read_only(url, sql, row_cap=cap, timeout_s=120)
    peak = _status_mb("VmHWM") if fresh else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": peak,
                "children_peak_mb": max(children, default=0.0),
                "rows": result.row_count,
                "truncated": result.truncated,
            }
        )
    )


if __name__ == "__main__":
    main()
