"""How the app writes values: durations a person reads at a glance, and a dash for what is missing."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

MISSING = "—"


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pandas' NA."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts, arrays
        return False


def format_duration(seconds: Any) -> str:
    """`0.12 s`, `1.2 s`, `59 s`, `3 min 4 s`, `2 h 5 min`; "—" when unknown."""
    if is_missing(seconds):
        return MISSING
    s = float(seconds)
    if not math.isfinite(s) or s < 0:
        return MISSING
    if s < 1:
        return f"{s:.2f} s"
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    whole = round(s)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def dashed(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for display where every missing value reads "—" (columns holding one become text)."""
    out = frame.copy()
    for name in out.columns:
        missing = out[name].map(is_missing)
        if missing.any():
            out[name] = [MISSING if m else _cell(v) for v, m in zip(out[name], missing, strict=True)]
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


FENCES = ("```", "~~~")


def readable_markdown(text: str | None) -> str:
    """An issue's or comment's text as Streamlit markdown that reads as on GitHub: fenced code stays, a bare Python
    traceback gets a fence of its own, and single line breaks stay line breaks."""
    out: list[str] = []
    fence: str | None = None
    in_traceback = False
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if in_traceback and (not line[:1].isspace() or not stripped):
            if stripped:
                out.append(line)  # the exception line ends the traceback
            out.append("```")
            in_traceback = False
            if stripped:
                continue
        if in_traceback:
            out.append(line)
        elif fence:
            out.append(line)
            if stripped.startswith(fence):
                fence = None
        elif stripped.startswith(FENCES):
            fence = stripped[:3]
            out.append(line)
        elif stripped.startswith("Traceback (most recent call last)"):
            out.extend(["```text", line])
            in_traceback = True
        else:
            out.append(f"{line}  " if stripped else "")
    if in_traceback or fence:
        out.append(fence or "```")
    return "\n".join(out).strip()
