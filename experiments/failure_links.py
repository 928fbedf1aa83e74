"""Links from failure signatures to upstream issues: rank the mined and sheet-imported issues of the converter's
repositories by TF-IDF cosine similarity (character n-grams, which match identifiers such as `ConvTranspose` or
`StridedSlice` across wordings) over normalised error text and operator names, store the top candidates, and keep
users' confirmations and rejections apart from them, so re-ranking never loses a decision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from db.errors import InteropError
from db.models.failures import DEFAULT_SIGNATURE_RULE, FailureLinkCandidate, FailureLinkDecision
from db.queries import failures as fq
from db.types import utcnow
from experiments.signatures import load_rule, normalise, operator_of

#: the ranking's version, stored with each candidate
METHOD = "tfidf-char-v1"
#: the repositories whose issues may report a converter's failures
CONVERTER_REPOS: dict[str, tuple[str, ...]] = {
    "torch.onnx": ("pytorch/pytorch",),
    "tf2onnx": ("onnx/tensorflow-onnx",),
}
#: what a mismatch signature means in words an issue would use (it has no message)
MISMATCH_TEXT = {
    "mismatch": "wrong output: the converted onnx model gives a different result than the original model",
    "mismatch.value": "wrong output values: difference in output between the onnx model and the original model",
    "mismatch.shape": "wrong output shape: the onnx model output shape is not identical with the original shape",
    "mismatch.dtype": "wrong output data type: the onnx model produces a different data type",
    "mismatch.nonfinite": "nan or inf in the output of the onnx model but not in the original model",
}
_PLACEHOLDER = re.compile(r"<(?:n|node|fn|shape|dtype|dtypes|addr)>")
_CAMEL = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b|\b[a-z]+_[a-z0-9_]+\b")


class LinkError(InteropError):
    """A signature or issue that cannot be resolved, or a decision that cannot be stored."""


def split_identifier(name: str) -> str:
    """`ConvTranspose` -> `conv transpose`, `upsample_bilinear2d` -> `upsample bilinear2d`: words an issue uses."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ")
    return spaced.lower()


def failure_text(message: str | None, operator: str | None = None, error_class: str | None = None) -> str:
    """The text a failure is matched on: its normalised message without placeholders, plus its operator (as
    written and split into words, twice: the operator is the strongest clue) and the class's last part."""
    message = message if isinstance(message, str) else None  # a frame's missing values are NaN
    operator = operator if isinstance(operator, str) else None
    parts = []
    if error_class and error_class.startswith("mismatch"):
        parts.append(MISMATCH_TEXT.get(error_class, MISMATCH_TEXT["mismatch"]))
    operator = operator or operator_of(message)
    if operator:
        parts += [operator, split_identifier(operator)] * 2
    if error_class and not error_class.startswith("mismatch"):
        parts.append(split_identifier(error_class.rsplit(".", 1)[-1]))
    parts.append(_PLACEHOLDER.sub(" ", normalise(message, load_rule())))
    return " ".join(p for p in parts if p).strip()


def issue_text(title: str | None, body: str | None) -> str:
    """The text an issue is matched on: title and the start of its body, normalised like a failure message, with
    the identifiers it names also split into words."""
    raw = f"{title or ''}\n{(body or '')[:3000]}"
    names = " ".join(split_identifier(m) for m in _CAMEL.findall(raw))
    return f"{_PLACEHOLDER.sub(' ', normalise(raw, load_rule()))} {names}".strip()


@dataclass
class Ranker:
    """TF-IDF over character n-grams (within word boundaries) of the issues' texts; cosine against a failure."""

    issues: pd.DataFrame  # id, repository, number, title, body
    ngrams: tuple[int, int] = (3, 5)

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.issues = self.issues.reset_index(drop=True)
        texts = [issue_text(t, b) for t, b in zip(self.issues["title"], self.issues["body"], strict=True)]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngrams, sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(texts) if texts else None

    def rank(self, text: str, repositories: Sequence[str] | None = None, top: int = 5) -> pd.DataFrame:
        """The `top` issues most similar to `text` (only of `repositories` when given), best first, score > 0."""
        columns = ["issue_id", "repository", "number", "title", "score"]
        if self.matrix is None:
            return pd.DataFrame(columns=columns)
        from sklearn.metrics.pairwise import linear_kernel

        scores = linear_kernel(self.vectorizer.transform([text]), self.matrix).ravel()  # rows are l2-normalised
        frame = self.issues.assign(score=scores, issue_id=self.issues["id"])
        if repositories is not None:
            frame = frame[frame["repository"].isin(list(repositories))]
        frame = frame[frame["score"] > 0].sort_values(["score", "issue_id"], ascending=[False, True], kind="stable")
        return frame.head(top)[columns].reset_index(drop=True)


def link_signatures(
    engine: Engine, rule_version: str = DEFAULT_SIGNATURE_RULE, campaign: str | None = None, top: int = 5
) -> dict[str, int]:
    """Rank the converter's repositories' issues for every signature of `campaign` (default: all) and store the
    `top` candidates of each, replacing the previous ranking of those signatures (decisions are kept)."""
    repos = sorted({r for rs in CONVERTER_REPOS.values() for r in rs})
    issues = fq.issues_for_linking(engine, repos)
    signatures = fq.signatures_for_linking(engine, campaign, rule_version)
    ranker = Ranker(issues)
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for sig in signatures.itertuples(index=False):
        text = failure_text(sig.message, sig.operator, sig.error_class)
        found = ranker.rank(text, CONVERTER_REPOS.get(sig.converter, ()), top)
        for rank, cand in enumerate(found.itertuples(index=False), start=1):
            rows.append(
                {
                    "signature_id": int(sig.id),
                    "issue_id": int(cand.issue_id),
                    "rank": rank,
                    "score": round(float(cand.score), 6),
                    "method": METHOD,
                    "computed_at": now,
                }
            )
    table = FailureLinkCandidate.__table__  # type: ignore[attr-defined]
    ids = [int(i) for i in signatures["id"]]
    with engine.begin() as conn:
        for start in range(0, len(ids), 1000):
            conn.execute(delete(table).where(table.c.signature_id.in_(ids[start : start + 1000])))
        for start in range(0, len(rows), 5000):
            conn.execute(table.insert(), rows[start : start + 5000])
    return {"signatures": len(ids), "issues": len(issues), "candidates": len(rows)}


def resolve(engine: Engine, signature: str, rule_version: str = DEFAULT_SIGNATURE_RULE) -> dict[str, Any]:
    """The one signature whose key starts with `signature` (at least 6 characters)."""
    if len(signature) < 6 or not re.fullmatch(r"[0-9a-fA-F]+", signature):
        raise LinkError(
            f"signature {signature!r}: give at least 6 hex digits of it (see `interop experiment failures`)"
        )
    found = fq.resolve_signature(engine, signature, rule_version)
    if not found:
        raise LinkError(f"no signature {signature!r} under rule {rule_version} (see `interop experiment failures`)")
    if len(found) > 1:
        raise LinkError(f"signature {signature!r} is ambiguous: {', '.join(f['key'][:12] for f in found)}")
    return found[0]


_ISSUE_REF = re.compile(r"^(?:(?P<repo>[\w.\-]+/[\w.\-]+))?#?(?P<number>\d+)$")


def decide(
    engine: Engine,
    signature: str,
    issue: str,
    decision: str,
    rule_version: str = DEFAULT_SIGNATURE_RULE,
    note: str | None = None,
) -> dict[str, Any]:
    """Store (or change) a confirmation or rejection of `issue` (`owner/name#N`, `#N` or `N` of the converter's
    repositories) for `signature`; returns the signature, issue and decision stored."""
    if decision not in ("confirmed", "rejected"):
        raise LinkError(f"decision must be confirmed or rejected, not {decision!r}")
    sig = resolve(engine, signature, rule_version)
    match = _ISSUE_REF.match(issue.strip())
    if not match:
        raise LinkError(f"issue {issue!r}: write owner/name#N, #N or N")
    repos = (match["repo"],) if match["repo"] else CONVERTER_REPOS.get(sig["converter"], ())
    found = fq.find_issue(engine, repos, int(match["number"]))
    if found is None:
        where = ", ".join(repos) or "no repository"
        raise LinkError(f"issue #{match['number']} is not stored for {where} (mine it or import its sheet first)")
    table = FailureLinkDecision.__table__  # type: ignore[attr-defined]
    key = {"rule_version": rule_version, "signature_key": sig["key"], "issue_id": found["id"]}
    with engine.begin() as conn:
        existing = conn.execute(
            select(table.c.id).where(*(table.c[k] == v for k, v in key.items()))
        ).scalar_one_or_none()
        values = {"decision": decision, "note": note, "decided_at": utcnow()}
        if existing is None:
            conn.execute(table.insert().values(**key, **values))
        else:
            conn.execute(table.update().where(table.c.id == existing).values(**values))
    return {"signature": sig["key"], "issue": f"{found['repository']}#{found['number']}", "decision": decision}


__all__ = [
    "CONVERTER_REPOS",
    "METHOD",
    "LinkError",
    "Ranker",
    "decide",
    "failure_text",
    "issue_text",
    "link_signatures",
]
