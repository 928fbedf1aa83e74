"""The issues read model: one typed filter and the SQL behind every issue list, count and chart.

The CLI (`interop issues list/show`), the app's Issues page and reports call these functions, so the same
filter gives the same issues everywhere. Aggregations run in SQL; only the rows shown are fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeVarTuple

import pandas as pd
from sqlalchemy import Boolean, ColumnElement, Select, and_, case, exists, func, literal, select
from sqlalchemy.engine import Engine

from db.models.base import core_table
from db.models.github import Issue, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink
from db.models.views import issue_codes

ISSUE, REPO, EVENT = core_table(Issue), core_table(Repository), core_table(IssueEvent)
SAMPLE, MEMBER, FIX = core_table(IssueSample), core_table(IssueSampleMember), core_table(IssueFixLink)
Ts = TypeVarTuple("Ts")

LabelMode = Literal["any", "all"]
LABEL_MODES: tuple[LabelMode, ...] = ("any", "all")
STATES = ("open", "closed")

LIST_COLUMNS = [
    "repository",
    "number",
    "title",
    "title_source",
    "state",
    "state_reason",
    "labels",
    "author",
    "created_at",
    "updated_at",
    "closed_at",
    "comment_count",
    "fix_linked",
    "mined",
    "html_url",
    "sheet_description",
]
#: Where a listed title comes from: GitHub (mined) or a coding sheet's Title column (until the issue is mined).
TITLE_SOURCES = ("github", "sheet")


def _strings(value: Any) -> tuple[str, ...]:
    """A tuple of the non-empty strings in `value` (one string, or any iterable of them)."""
    values = [value] if isinstance(value, str) else list(value or ())
    return tuple(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True, kw_only=True)
class IssueFilter:
    """Which issues: every field narrows the set; the defaults mean "all mined issues".

    `labels` match per `label_mode` ("any": at least one of them, "all": every one); `since`/`until` are the
    first and last UTC day the issue was opened; `text` is searched in title and body (case-insensitive);
    `fix_linked` is the stored verdict of `rule_version`; `mined` False selects the issues known only by URL
    (from coding sheets), None both.
    """

    repositories: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_mode: LabelMode = "any"
    state: str | None = None
    since: date | None = None
    until: date | None = None
    text: str | None = None
    sample: str | None = None
    fix_linked: bool | None = None
    rule_version: str = DEFAULT_FIX_RULE_VERSION
    mined: bool | None = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "repositories", _strings(self.repositories))
        set_(self, "labels", _strings(self.labels))
        set_(self, "since", _day(self.since))
        set_(self, "until", _day(self.until))
        set_(self, "state", self.state or None)
        set_(self, "text", (self.text or "").strip() or None)
        set_(self, "sample", self.sample or None)
        set_(self, "rule_version", self.rule_version or DEFAULT_FIX_RULE_VERSION)
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}, not {self.label_mode!r}")
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")


@dataclass(frozen=True)
class IssueRef:
    """One issue named as GitHub writes it: `owner/name#number`."""

    repository: str
    number: int

    @classmethod
    def parse(cls, text: str) -> IssueRef:
        """`owner/name#123` → IssueRef; anything else raises ValueError saying what was expected."""
        repository, _, number = str(text).strip().rpartition("#")
        if not repository or "/" not in repository or not number.isdigit():
            raise ValueError(f"expected owner/name#number, got {text!r}")
        return cls(repository, int(number))

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"


@dataclass(frozen=True)
class IssueDetail:
    """One issue: its stored fields (not the raw payload), timeline oldest first, samples and fix verdicts."""

    issue: dict[str, Any]
    timeline: pd.DataFrame
    samples: list[str]
    fix_verdicts: pd.DataFrame


# --- the filter in SQL ------------------------------------------------------------------------------------


def _labels_match(engine: Engine, labels: tuple[str, ...], mode: LabelMode) -> ColumnElement[bool]:
    """The issue's JSON label list has any / all of `labels` (JSONB ?| / ?& on PostgreSQL, json_each on SQLite)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY, TEXT

        operator = "?|" if mode == "any" else "?&"
        return ISSUE.c.labels.op(operator, return_type=Boolean)(literal(list(labels), ARRAY(TEXT)))
    each = func.json_each(ISSUE.c.labels).table_valued("value")
    if mode == "any":
        return exists(select(literal(1)).select_from(each).where(each.c.value.in_(labels)))
    found = select(func.count(func.distinct(each.c.value))).select_from(each).where(each.c.value.in_(labels))
    return found.scalar_subquery() == len(labels)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _where(engine: Engine, stmt: Select[*Ts], f: IssueFilter) -> Select[*Ts]:
    """`stmt` (selecting from issue JOIN repository) narrowed to the issues `f` describes."""
    if f.mined is not None:
        stmt = stmt.where(ISSUE.c.hydrated.is_(f.mined))
    if f.repositories:
        stmt = stmt.where(REPO.c.full_name.in_(f.repositories))
    if f.labels:
        stmt = stmt.where(_labels_match(engine, f.labels, f.label_mode))
    if f.state:
        stmt = stmt.where(ISSUE.c.state == f.state)
    if f.since:
        stmt = stmt.where(ISSUE.c.created_at >= _midnight(f.since))
    if f.until:
        stmt = stmt.where(ISSUE.c.created_at < _midnight(f.until + timedelta(days=1)))
    if f.text:
        needle = f.text.lower()
        stmt = stmt.where(
            func.lower(ISSUE.c.title).contains(needle, autoescape=True)
            | func.lower(ISSUE.c.body).contains(needle, autoescape=True)
            | func.lower(ISSUE.c.sheet_title).contains(needle, autoescape=True)
            | func.lower(ISSUE.c.sheet_description).contains(needle, autoescape=True)
        )
    if f.sample:
        members = select(MEMBER.c.issue_id).join(SAMPLE, SAMPLE.c.id == MEMBER.c.sample_id)
        stmt = stmt.where(ISSUE.c.id.in_(members.where(SAMPLE.c.name == f.sample)))
    if f.fix_linked is not None:
        linked = select(FIX.c.issue_id).where(FIX.c.rule_version == f.rule_version, FIX.c.fix_linked.is_(True))
        stmt = stmt.where(ISSUE.c.id.in_(linked) if f.fix_linked else ISSUE.c.id.not_in(linked))
    return stmt


def _title() -> tuple[Any, Any]:
    """The title to show (GitHub's, else the sheet's) and where it comes from (`github`, `sheet` or NULL)."""
    github = and_(ISSUE.c.hydrated.is_(True), ISSUE.c.title.is_not(None))
    title = case((github, ISSUE.c.title), else_=func.coalesce(ISSUE.c.sheet_title, ISSUE.c.title))
    source = case(
        (github, literal("github")),
        (func.coalesce(ISSUE.c.sheet_title, ISSUE.c.title).is_not(None), literal("sheet")),
        else_=literal(None),
    )
    return title.label("title"), source.label("title_source")


def _base() -> Any:
    return ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id)


def _month(engine: Engine, column: Any) -> Any:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("month", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _months(frame: pd.DataFrame) -> pd.DataFrame:
    frame["month"] = pd.to_datetime(frame["month"].astype(str) + "-01", utc=True)
    return frame


# --- the reads --------------------------------------------------------------------------------------------


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """Values the filters offer: repositories, labels in use, states, sample names, fix-rule versions."""
    with engine.connect() as conn:
        repos = conn.execute(select(REPO.c.full_name).order_by(REPO.c.full_name)).scalars().all()
        states = conn.execute(select(ISSUE.c.state).where(ISSUE.c.state.is_not(None)).distinct()).scalars().all()
        samples = conn.execute(select(SAMPLE.c.name).order_by(SAMPLE.c.name)).scalars().all()
        rules = conn.execute(select(FIX.c.rule_version).distinct()).scalars().all()
        if engine.dialect.name == "postgresql":
            label = func.jsonb_array_elements_text(ISSUE.c.labels).table_valued("value")
        else:
            label = func.json_each(ISSUE.c.labels).table_valued("value")
        labels = (
            conn.execute(
                select(label.c.value).select_from(ISSUE).join(label, literal(True)).distinct().order_by(label.c.value)
            )
            .scalars()
            .all()
        )
    return {
        "repositories": list(repos),
        "labels": [str(x) for x in labels],
        "states": sorted(states),
        "samples": list(samples),
        # the study's rule first, then the others by name
        "rule_versions": sorted(rules, key=lambda v: (v != DEFAULT_FIX_RULE_VERSION, v)),
    }


def issue_summary(engine: Engine, f: IssueFilter) -> pd.DataFrame:
    """The matching issues per repository: issues, closed, with a commit in the timeline, fix-linked by
    `f.rule_version` (stored verdicts)."""
    has_commit = exists(select(literal(1)).where(and_(EVENT.c.issue_id == ISSUE.c.id, EVENT.c.commit_id.is_not(None))))
    linked = exists(
        select(literal(1)).where(
            FIX.c.issue_id == ISSUE.c.id, FIX.c.rule_version == f.rule_version, FIX.c.fix_linked.is_(True)
        )
    )
    stmt = _where(
        engine,
        select(
            REPO.c.full_name.label("repository"),
            func.count().label("issues"),
            func.sum(case((ISSUE.c.state == "closed", 1), else_=0)).label("closed"),
            func.sum(case((has_commit, 1), else_=0)).label("with_commit_event"),
            func.sum(case((linked, 1), else_=0)).label("fix_linked"),
        ).select_from(_base()),
        f,
    ).group_by(REPO.c.full_name)
    columns = ["repository", "issues", "closed", "with_commit_event", "fix_linked"]
    with engine.connect() as conn:
        rows = [r._tuple() for r in conn.execute(stmt.order_by(REPO.c.full_name))]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "int64" for c in columns[1:]})


def issue_list(engine: Engine, f: IssueFilter, *, limit: int | None = 100, offset: int = 0) -> pd.DataFrame:
    """One page of the matching issues: newest first, or a sample's members in drawn order when `f.sample`
    is set; `fix_linked` is the verdict of `f.rule_version` (NA: not evaluated), `labels` a list; `title` is
    GitHub's, or a coding sheet's until the issue is mined (`title_source` says which)."""
    stmt = select(
        REPO.c.full_name.label("repository"),
        ISSUE.c.number,
        *_title(),
        *(ISSUE.c[c] for c in LIST_COLUMNS[4:12]),
        FIX.c.fix_linked,
        ISSUE.c.hydrated.label("mined"),
        ISSUE.c.html_url,
        ISSUE.c.sheet_description,
    ).select_from(_base().outerjoin(FIX, and_(FIX.c.issue_id == ISSUE.c.id, FIX.c.rule_version == f.rule_version)))
    stmt = _where(engine, stmt, f)
    if f.sample:
        position = (
            select(MEMBER.c.position)
            .join(SAMPLE, SAMPLE.c.id == MEMBER.c.sample_id)
            .where(SAMPLE.c.name == f.sample, MEMBER.c.issue_id == ISSUE.c.id)
            .scalar_subquery()
        )
        stmt = stmt.order_by(position, ISSUE.c.id)
    else:
        stmt = stmt.order_by(ISSUE.c.created_at.desc(), ISSUE.c.number.desc(), ISSUE.c.id.desc())
    stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        frame = pd.DataFrame([r._tuple() for r in conn.execute(stmt)], columns=LIST_COLUMNS)
    frame["labels"] = frame["labels"].map(lambda v: list(v or []))
    frame["fix_linked"] = frame["fix_linked"].astype("boolean")
    frame["mined"] = frame["mined"].astype(bool)
    frame["comment_count"] = frame["comment_count"].astype("Int64")
    for column in ("created_at", "updated_at", "closed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def issues_over_time(engine: Engine, f: IssueFilter) -> pd.DataFrame:
    """Matching issues opened and closed per month and repository: month, repository, what, issues."""
    parts = []
    for what, column in (("opened", ISSUE.c.created_at), ("closed", ISSUE.c.closed_at)):
        month = _month(engine, column).label("month")
        stmt = _where(
            engine,
            select(month, REPO.c.full_name.label("repository"), literal(what).label("what"), func.count())
            .select_from(_base())
            .where(column.is_not(None)),
            f,
        ).group_by(month, REPO.c.full_name)
        parts.append(stmt)
    with engine.connect() as conn:
        rows = [r._tuple() for part in parts for r in conn.execute(part)]
    frame = _months(pd.DataFrame(rows, columns=["month", "repository", "what", "issues"]))
    return frame.sort_values(["month", "repository", "what"], ignore_index=True)


def coded_over_time(engine: Engine, f: IssueFilter, dimension: str = "symptom") -> pd.DataFrame:
    """Matching issues with a final label of `dimension`, per month opened and code: month, code, issues
    (an issue counts once per code, whichever rounds gave it)."""
    month = _month(engine, ISSUE.c.created_at)
    pairs = _where(
        engine,
        select(month.label("month"), issue_codes.c.label.label("code"), ISSUE.c.id.label("issue_id"))
        .select_from(_base().join(issue_codes, issue_codes.c.issue_id == ISSUE.c.id))
        .where(
            issue_codes.c.value_source == "final",
            issue_codes.c.dimension == dimension,
            ISSUE.c.created_at.is_not(None),
        )
        .distinct(),
        f,
    ).subquery()
    stmt = select(pairs.c.month, pairs.c.code, func.count()).group_by(pairs.c.month, pairs.c.code)
    with engine.connect() as conn:
        frame = pd.DataFrame([r._tuple() for r in conn.execute(stmt)], columns=["month", "code", "issues"])
    return _months(frame).sort_values(["month", "code"], ignore_index=True)


def issue_detail(engine: Engine, ref: IssueRef) -> IssueDetail | None:
    """One issue with its timeline, samples and fix verdicts, or None when the store does not have it."""
    title, source = _title()
    stmt = (
        select(
            REPO.c.full_name.label("repository"),
            *(title if c.name == "title" else c for c in ISSUE.c if c.name != "raw"),
            source,
        )
        .select_from(_base())
        .where(REPO.c.full_name == ref.repository, ISSUE.c.number == int(ref.number))
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
        if row is None:
            return None
        events = (
            conn.execute(
                select(*(c for c in EVENT.c if c.name not in ("id", "raw", "issue_id")))
                .where(EVENT.c.issue_id == row["id"])
                .order_by(EVENT.c.created_at, EVENT.c.id)
            )
            .mappings()
            .all()
        )
        samples = (
            conn.execute(
                select(SAMPLE.c.name)
                .join(MEMBER, MEMBER.c.sample_id == SAMPLE.c.id)
                .where(MEMBER.c.issue_id == row["id"])
                .order_by(SAMPLE.c.name)
            )
            .scalars()
            .all()
        )
        verdicts = conn.execute(
            select(FIX.c.rule_version, FIX.c.fix_linked, FIX.c.evidence, FIX.c.evaluated_at)
            .where(FIX.c.issue_id == row["id"])
            .order_by(FIX.c.rule_version)
        ).all()
    event_columns = [c.name for c in EVENT.c if c.name not in ("id", "raw", "issue_id")]
    timeline = pd.DataFrame([dict(e) for e in events], columns=event_columns)
    timeline["created_at"] = pd.to_datetime(timeline["created_at"], utc=True)
    timeline["source_number"] = timeline["source_number"].astype("Int64")  # acme/other#902, not 902.0 beside NULLs
    fixes = pd.DataFrame(
        [v._tuple() for v in verdicts], columns=["rule_version", "fix_linked", "evidence", "evaluated_at"]
    )
    return IssueDetail(issue=dict(row), timeline=timeline, samples=list(samples), fix_verdicts=fixes)
