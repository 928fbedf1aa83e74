"""Failure signatures: which failed, crashed or mismatching runs are the same failure (distinct bugs, not counts).

A signature is converter × stage × error class × the message normalised × the operator the message names. The
normalisation is a versioned rule (like the fix-link rule): node names, paths, numbers, shapes, addresses and
dtype lists become placeholders, so `… ArgMax(13) node with name 'StatefulPartitionedCall/ArgMax_2'` and
`… ArgMax(13) node with name 'ArgMax_50'` are one failure, and ArgMax versus Cos two. Signatures are stored per
rule version (`failure_signature`, `run_signature`); a changed rule is a new version computed beside the old.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Engine

from db.errors import InteropError
from db.models.experiments import Campaign, ConversionRun, RunOutput
from db.models.failures import DEFAULT_SIGNATURE_RULE, FailureLinkCandidate, FailureSignature, RunSignature
from db.outcomes import RunOutcome
from db.types import utcnow
from db.versioned import pick_version

#: the outcomes that get a signature: every run without a passing verdict
SIGNED = tuple(o.value for o in RunOutcome if o is not RunOutcome.passed)


class SignatureRuleError(InteropError):
    """An unknown rule version or a malformed rule definition."""


@dataclass(frozen=True)
class SignatureRule:
    """Parameters of one rule version: what the normalisation keeps (everything else is canonicalised)."""

    version: str
    #: keep an operator's opset in `ArgMax(13)` (False: `ArgMax(<n>)`)
    keep_op_version: bool = False
    #: keep single dtypes such as `tensor(int8)` (False: `tensor(<dtype>)`)
    keep_dtypes: bool = False
    #: characters of the normalised message kept
    max_chars: int = 400
    #: node-name rules: 1 (sig-v1) only quoted names after `Name:`; 2 also unquoted or double-quoted names after
    #: `Name:`/`Node:`/`at node`, TensorFlow graph paths (`PartitionedCall/Gelu/Erfc`) anywhere and tf2onnx's
    #: `Tensorflow op [path: Op]`
    node_names: int = 2

    def definition(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        return data


BUILTIN_RULES: dict[str, dict[str, Any]] = {
    "sig-v1": {"keep_op_version": False, "keep_dtypes": False, "max_chars": 400, "node_names": 1},
    "sig-v1-dtypes": {"keep_op_version": True, "keep_dtypes": True, "max_chars": 400, "node_names": 1},
    "sig-v2": {"keep_op_version": False, "keep_dtypes": False, "max_chars": 400, "node_names": 2},
    "sig-v2-dtypes": {"keep_op_version": True, "keep_dtypes": True, "max_chars": 400, "node_names": 2},
}


def rule_from_definition(version: str, definition: Mapping[str, Any]) -> SignatureRule:
    known = {"keep_op_version", "keep_dtypes", "max_chars", "node_names"}
    unknown = set(definition) - known
    if unknown:
        raise SignatureRuleError(f"signature rule {version!r}: unknown field(s) {', '.join(sorted(unknown))}")
    return SignatureRule(version=version, **dict(definition))


def load_rule(version: str = DEFAULT_SIGNATURE_RULE, configured: Mapping[str, Any] | None = None) -> SignatureRule:
    """A built-in version, or one defined under `[signature_rules.<version>]` in interop.toml."""
    return pick_version(version, configured, BUILTIN_RULES, rule_from_definition, SignatureRuleError, "signature rule")


# --- the normalisation -------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: where a message names the operator involved (first match wins)
_OPERATOR = [
    re.compile(p)
    for p in (
        r"implementation for (?P<op>[A-Za-z]\w*)\(",
        r"kernel for (?P<op>[A-Za-z]\w*)\(",
        r"while running (?P<op>[A-Za-z]\w*) node",
        r"\bOp \((?P<op>[A-Za-z]\w*)\)",
        r"of operator \((?P<op>[A-Za-z]\w*)\)",
        r"Optype \((?P<op>[A-Za-z]\w*)\)",
        r"op_type:(?P<op>[A-Za-z]\w*)",
        r"Op<name=(?P<op>[A-Za-z]\w*)",
        r"\[Op:(?P<op>[A-Za-z]\w*)\]",
        r"[Tt]ensorflow op \[?(?:[\w/]+: )?(?P<op>[A-Za-z]\w*)\]?",
        r"Exporting the operator '?(?:(?:aten|prim|onnx)?::)?(?P<op>[A-Za-z]\w*)",
        r"[Cc]ouldn't export (?:Python )?operator (?:(?:aten|prim)::)?(?P<op>[A-Za-z]\w*)",
        r"ATen operator (?P<op>[A-Za-z]\w*)",
        r"(?:aten|prim)::(?P<op>[A-Za-z]\w*)",
    )
]
_DTYPE_WORDS = (
    r"(?:bfloat16|half|float16|float32|float64|float|double|u?int8|u?int16|u?int32|u?int64|bool|string|"
    r"complex64|complex128|resource|variant)"
)
_SUBSTITUTIONS: list[tuple[re.Pattern[str], str]] = [
    # where a model was loaded from, and source locations (`/Users/runner/…/concat.cc:141` -> `concat.cc`)
    (re.compile(r"Load model from \S+ failed:\s*"), "Load model failed: "),
    (
        re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.+\-@]+)+[\\/](?P<base>[\w.+\-]+\.(?:cc|cpp|h|hpp|py|c))(?::\d+)?"),
        r"\g<base>",
    ),
    (re.compile(r"\b(?P<base>[\w.+\-]+\.(?:cc|cpp|h|hpp|py|c)):\d+\b"), r"\g<base>"),
    # TensorFlow's function and node decorations
    (re.compile(r"\{\{function_node [^}]*\}\}"), "{{function_node <fn>}}"),
    (re.compile(r"\{\{node [^}]*\}\}"), "{{node <node>}}"),
    (re.compile(r"(?<=\[Op:)(\w+)\] name: \S*"), r"\1]"),
    # node names: quoted, or in the parentheses onnxruntime and onnx put them in
    (re.compile(r"(node with name|Name:|name:)\s*'[^']*'"), r"\1 <node>"),
    (re.compile(r"\b(in node|Node|node|input parameter|Op with name|[Nn]ode name:?)\s*\(([^()]*)\)"), r"\1 (<node>)"),
    (re.compile(r"(node name: )[^)\s,]+"), r"\1<node>"),
    (re.compile(r"\(node [^()\s]+\)"), "(node <node>)"),
    (re.compile(r"Input (\d+) of node \S+ was passed"), r"Input <n> of node <node> was passed"),
    # lists of dtypes ("allowed values: bfloat16, half, …", "allowed=[DT_BFLOAT16, …]")
    (re.compile(r"allowed=\[[^\]]*\]"), "allowed=[<dtypes>]"),
    (re.compile(rf"(allowed values|types?):?\s*\(?{_DTYPE_WORDS}(?:\s*,\s*{_DTYPE_WORDS})+\)?"), r"\1: <dtypes>"),
    (re.compile(r"\(tensor\(\w+\),?\)"), "(<dtypes>)"),
    # addresses, shapes, hex ids
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"\{[\d\s,\-]*\}"), "{<shape>}"),
    (re.compile(r"\[[\d\s,\-?]+\]"), "[<shape>]"),
    (re.compile(r"\(\s*-?\d+(?:\s*,\s*-?\d+)+\s*,?\s*\)"), "(<shape>)"),
]
#: node-name rules added by `node_names=2`, applied before the others: a name after a keyword, quoted with ' or "
#: or not at all (`Name:PartitionedCall/Gelu/Erfc`, `Node: "model/dense/MatMul"`, `at node 'x/y'`), TensorFlow
#: graph paths under a (Stateful)PartitionedCall anywhere, and tf2onnx's `Tensorflow op [path: Op]`
_NODE_NAMES_V2: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\[(?:Stateful)?PartitionedCall(?:/[^\s:\]]+)+: "), "[<node>: "),
    (
        re.compile(r"\b(Name:|name:|Node:|at node|node name:)\s*(?:'[^']*'|\"[^\"]*\"|(?![<'\"])[^\s'\",;)]+)"),
        r"\1 <node>",
    ),
    (re.compile(r"(?<![\w/<])(?:Stateful)?PartitionedCall(?:/[\w.\-]+)*(?::\d+)?"), "<node>"),
]
_OP_VERSION = re.compile(r"\b([A-Za-z]\w*)\((\d+)\)")
_SINGLE_DTYPE = [
    (re.compile(rf"tensor\({_DTYPE_WORDS}\)"), "tensor(<dtype>)"),
    (re.compile(rf"\bof {_DTYPE_WORDS} is not in the list"), "of <dtype> is not in the list"),
    (re.compile(r"\bDT_[A-Z0-9]+\b"), "DT_<dtype>"),
]
_NUMBER = re.compile(r"(?<![\w<.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_NAME_WITH_INDEX = re.compile(r"\b([A-Za-z]\w*?)_\d+\b")
_SPACE = re.compile(r"\s+")


def operator_of(message: str | None) -> str | None:
    """The operator a failure message names (onnxruntime, onnx, TensorFlow or torch.onnx wording), or None."""
    text = _ANSI.sub("", message or "")
    for pattern in _OPERATOR:
        match = pattern.search(text)
        if match:
            return match["op"]
    return None


def normalise(message: str | None, rule: SignatureRule | None = None) -> str:
    """The message with what varies between occurrences of one failure replaced by placeholders."""
    rule = rule or load_rule()
    text = _ANSI.sub("", message or "").strip()
    if text in ("b''", 'b""'):
        text = ""
    if rule.node_names >= 2:
        for pattern, repl in _NODE_NAMES_V2:
            text = pattern.sub(repl, text)
    for pattern, repl in _SUBSTITUTIONS:
        text = pattern.sub(repl, text)
    if not rule.keep_dtypes:
        for pattern, repl in _SINGLE_DTYPE:
            text = pattern.sub(repl, text)
    # a kept version is protected from the number rule below as `(vN)`
    text = _OP_VERSION.sub(r"\1(v\2)" if rule.keep_op_version else r"\1(<n>)", text)
    text = _NAME_WITH_INDEX.sub(r"\1_<n>", text)
    text = _NUMBER.sub("<n>", text)
    if rule.keep_op_version:
        text = re.sub(r"\b([A-Za-z]\w*)\(v(\d+)\)", r"\1(\2)", text)
    text = _SPACE.sub(" ", text).strip()
    return text[: rule.max_chars]


@dataclass(frozen=True)
class Signature:
    """The components of one signature and their hash (the stored key)."""

    converter: str
    stage: str
    error_class: str
    message: str
    operator: str | None

    @property
    def key(self) -> str:
        parts = [self.converter, self.stage, self.error_class, self.message, self.operator or ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def mismatch_kind(outputs: Sequence[Mapping[str, Any]]) -> str:
    """How a mismatching run's outputs disagree: shape, dtype, nonfinite (NaN/Inf), value, or unknown (none
    stored)."""
    if not outputs:
        return "mismatch"
    if any(not o.get("shape_match", True) for o in outputs):
        return "mismatch.shape"
    if any(not o.get("dtype_match", True) for o in outputs):
        return "mismatch.dtype"
    if any(int(o.get("nonfinite_mismatch") or 0) > 0 for o in outputs):
        return "mismatch.nonfinite"
    return "mismatch.value"


def signature_of(run: Mapping[str, Any], rule: SignatureRule, outputs: Sequence[Mapping[str, Any]] = ()) -> Signature:
    """The signature of one run (a `conversion_run` row as a mapping) under `rule`."""
    if run["status"] == RunOutcome.mismatch:
        return Signature(str(run["converter"]), "compare", mismatch_kind(list(outputs)), "", None)
    return Signature(
        converter=str(run["converter"]),
        stage=str(run.get("stage") or "unknown"),
        error_class=str(run.get("error_class") or f"worker.{run['status']}"),
        message=normalise(run.get("message"), rule),
        operator=operator_of(run.get("message")),
    )


# --- the workflow ------------------------------------------------------------------------------------------


def compute_signatures(
    engine: Engine, rule: SignatureRule | None = None, campaign: str | None = None
) -> dict[str, int]:
    """Sign every run of `campaign` (default: all) without a passing verdict under `rule`, in one transaction.

    Idempotent: a run keeps its signature row while its signature is unchanged; a run that passes now (after
    `rescore`) loses it; signatures no run has any more are deleted. Returns runs, signatures, changed counts."""
    rule = rule or load_rule()
    run_t, out_t = ConversionRun.__table__, RunOutput.__table__  # type: ignore[attr-defined]
    sig_t, rs_t = FailureSignature.__table__, RunSignature.__table__  # type: ignore[attr-defined]
    camp_t = Campaign.__table__  # type: ignore[attr-defined]
    cols = [run_t.c.id, run_t.c.converter, run_t.c.status, run_t.c.stage, run_t.c.error_class, run_t.c.message]
    scope = select(run_t.c.id)
    if campaign is not None:
        scope = scope.join(camp_t, camp_t.c.id == run_t.c.campaign_id).where(camp_t.c.name == campaign)
    with engine.begin() as conn:
        rows = conn.execute(select(*cols).where(run_t.c.id.in_(scope), run_t.c.status.in_(SIGNED))).mappings().all()
        mismatching = [r["id"] for r in rows if r["status"] == RunOutcome.mismatch]
        outputs: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(mismatching), 5000):
            chunk = mismatching[start : start + 5000]
            found = conn.execute(
                select(out_t.c.run_id, out_t.c.shape_match, out_t.c.dtype_match, out_t.c.nonfinite_mismatch).where(
                    out_t.c.run_id.in_(chunk)
                )
            ).mappings()
            for o in found:
                outputs.setdefault(int(o["run_id"]), []).append(dict(o))
        wanted = {int(r["id"]): signature_of(dict(r), rule, outputs.get(int(r["id"]), [])) for r in rows}
        known = {
            k: i for k, i in conn.execute(select(sig_t.c.key, sig_t.c.id).where(sig_t.c.rule_version == rule.version))
        }
        for sig in {s.key: s for s in wanted.values()}.values():
            if sig.key not in known:
                values: dict[str, Any] = {"rule_version": rule.version, "key": sig.key, "converter": sig.converter}
                values.update(stage=sig.stage, error_class=sig.error_class[:200], operator=sig.operator)
                values.update(message=sig.message, created_at=utcnow())
                known[sig.key] = conn.execute(sig_t.insert().values(**values).returning(sig_t.c.id)).scalar_one()
        current = {
            int(run): int(sid)
            for run, sid in conn.execute(
                select(rs_t.c.run_id, rs_t.c.signature_id).where(
                    rs_t.c.rule_version == rule.version, rs_t.c.run_id.in_(scope)
                )
            )
        }
        target = {run: known[sig.key] for run, sig in wanted.items()}
        stale = [run for run, sid in current.items() if target.get(run) != sid]
        for start in range(0, len(stale), 5000):
            chunk = stale[start : start + 5000]
            conn.execute(delete(rs_t).where(rs_t.c.rule_version == rule.version, rs_t.c.run_id.in_(chunk)))
        new = [
            {"run_id": run, "rule_version": rule.version, "signature_id": sid}
            for run, sid in target.items()
            if current.get(run) != sid
        ]
        for start in range(0, len(new), 5000):
            conn.execute(rs_t.insert(), new[start : start + 5000])
        used = select(rs_t.c.signature_id).where(rs_t.c.rule_version == rule.version)
        orphans = and_(sig_t.c.rule_version == rule.version, sig_t.c.id.not_in(used))
        removed = conn.execute(select(sig_t.c.id).where(orphans)).scalars().all()
        _forget_signatures(conn, list(removed))
    return {
        "runs": len(target),
        "signatures": len(set(target.values())),
        "changed": len(new) + len([r for r in stale if r not in target]),
    }


def _forget_signatures(conn: Any, ids: list[int]) -> None:
    """Delete signatures no run has any more, with their ranked candidates (users' decisions are kept)."""
    if not ids:
        return
    sig_t = FailureSignature.__table__  # type: ignore[attr-defined]
    cand_t = FailureLinkCandidate.__table__  # type: ignore[attr-defined]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        conn.execute(delete(cand_t).where(cand_t.c.signature_id.in_(chunk)))
        conn.execute(delete(sig_t).where(sig_t.c.id.in_(chunk)))


def unsigned_runs(engine: Engine, rule_version: str = DEFAULT_SIGNATURE_RULE, campaign: str | None = None) -> int:
    """Runs without a passing verdict that have no signature under `rule_version` yet (0: up to date)."""
    from sqlalchemy import func

    run_t, rs_t = ConversionRun.__table__, RunSignature.__table__  # type: ignore[attr-defined]
    camp_t = Campaign.__table__  # type: ignore[attr-defined]
    signed = select(rs_t.c.run_id).where(rs_t.c.rule_version == rule_version)
    stmt = select(func.count()).select_from(run_t).where(run_t.c.status.in_(SIGNED), run_t.c.id.not_in(signed))
    if campaign is not None:
        stmt = stmt.where(run_t.c.campaign_id.in_(select(camp_t.c.id).where(camp_t.c.name == campaign)))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
