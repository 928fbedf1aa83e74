"""Differential comparison of one output pair, and verdicts that can be recomputed from the stored numbers.

Per output we keep shape/dtype agreement, NaN/Inf counts, the max absolute and relative difference over
positions finite on both sides, and `needed_atol[rtol]` = max(|a-b| - rtol*|ref|): for any atol the output
passes at that rtol iff needed_atol <= atol. That makes `rescore` exact for every rtol in the grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from db.outcomes import RTOL_GRID, rtol_key

__all__ = ["RTOL_GRID", "compare_output", "output_passes", "rtol_key", "run_passes"]


def compare_output(ref: Any, got: Any, atol: float, rtol: float) -> dict[str, Any]:
    """Raw comparison numbers of a reference output and an onnxruntime output."""
    ref_a, got_a = np.asarray(ref), np.asarray(got)
    row: dict[str, Any] = {
        "ref_shape": [int(d) for d in ref_a.shape],
        "onnx_shape": [int(d) for d in got_a.shape],
        "ref_dtype": ref_a.dtype.name,
        "onnx_dtype": got_a.dtype.name,
        "shape_match": ref_a.shape == got_a.shape,
        "dtype_match": ref_a.dtype == got_a.dtype,
        "n_elements": int(ref_a.size),
        "max_abs_diff": None,
        "max_rel_diff": None,
        "n_outside": None,
        "fraction_outside": None,
        "needed_atol": None,
        "ref_nan": 0,
        "ref_inf": 0,
        "onnx_nan": 0,
        "onnx_inf": 0,
        "nonfinite_mismatch": 0,
    }
    numeric = all(np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_ for a in (ref_a, got_a))
    if not numeric:
        return row
    if np.iscomplexobj(ref_a) or np.iscomplexobj(got_a):
        ref_f, got_f = ref_a.astype(np.complex128), got_a.astype(np.complex128)
    else:
        ref_f, got_f = ref_a.astype(np.float64), got_a.astype(np.float64)
    row.update(
        ref_nan=int(np.isnan(ref_f).sum()),
        ref_inf=int(np.isinf(ref_f).sum()),
        onnx_nan=int(np.isnan(got_f).sum()),
        onnx_inf=int(np.isinf(got_f).sum()),
    )
    if not row["shape_match"]:
        return row
    ref_fin, got_fin = np.isfinite(ref_f), np.isfinite(got_f)
    both = ref_fin & got_fin
    same_nonfinite = ~ref_fin & ~got_fin & ((np.isnan(ref_f) & np.isnan(got_f)) | (ref_f == got_f))
    row["nonfinite_mismatch"] = int((~both & ~same_nonfinite).sum())
    diff = np.abs(ref_f[both] - got_f[both])
    mag = np.abs(ref_f[both])
    if diff.size:
        row["max_abs_diff"] = float(diff.max())
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(mag > 0, diff / np.where(mag > 0, mag, 1), np.where(diff > 0, np.inf, 0.0))
        row["max_rel_diff"] = float(rel.max()) if np.isfinite(rel.max()) else None
        grid = sorted({*RTOL_GRID, float(rtol)})
        row["needed_atol"] = {rtol_key(r): max(float((diff - r * mag).max()), 0.0) for r in grid}
    else:
        row["needed_atol"] = {rtol_key(r): 0.0 for r in sorted({*RTOL_GRID, float(rtol)})}
    outside = int((diff > atol + rtol * mag).sum()) + row["nonfinite_mismatch"]
    row["n_outside"] = outside
    row["fraction_outside"] = outside / ref_a.size if ref_a.size else 0.0
    return row


def output_passes(row: Mapping[str, Any], atol: float, rtol: float) -> bool:
    """Verdict of one stored output at (atol, rtol); `rtol` must be on the grid or the campaign's rtol."""
    if not row["shape_match"] or not row["dtype_match"] or row["nonfinite_mismatch"]:
        return False
    needed = row.get("needed_atol") or {}
    if not needed:
        return False
    key = rtol_key(rtol)
    if key not in needed:
        raise ValueError(f"rtol {rtol} is not stored; exact rescoring works for rtol in {sorted(needed)}")
    return float(needed[key]) <= atol


def run_passes(rows: Sequence[Mapping[str, Any]], atol: float, rtol: float) -> bool:
    """A run passes when it compared at least one output and every output of every input passes."""
    return bool(rows) and all(output_passes(r, atol, rtol) for r in rows)
