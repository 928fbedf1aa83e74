"""The issues read model: one typed filter and the SQL behind every issue list, count and chart.

The CLI (`interop issues list/show`), the app's Issues page and reports call these functions, so the same
filter gives the same issues everywhere. Aggregations run in SQL; only the rows shown are fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeVarTuple

import pandas as pd
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.models.base import core_table
from db.models.github import Issue, IssueComment, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink
from db.models.labeling import (
    CodebookCode,
    CodebookDimension,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    LabelItem,
    LabelRound,
    LsProject,
    LsTask,
)
from db.models.views import issue_codes
from db.queries import labeling as labeling_q

ISSUE, REPO, EVENT = core_table(Issue), core_table(Repository), core_table(IssueEvent)
COMMENT = core_table(IssueComment)
SAMPLE, MEMBER, FIX = core_table(IssueSample), core_table(IssueSampleMember), core_table(IssueFixLink)
ITEM, ROUND, CODER = core_table(LabelItem), core_table(LabelRound), core_table(Coder)
CODING, VALUE, FINAL = core_table(Coding), core_table(CodingValue), core_table(FinalLabel)
DIM, CODE = core_table(CodebookDimension), core_table(CodebookCode)
PROJECT, TASK = core_table(LsProject), core_table(LsTask)
Ts = TypeVarTuple("Ts")

LabelMode = Literal["any", "all"]
LABEL_MODES: tuple[LabelMode, ...] = ("any", "all")
STATES = ("open", "closed")
#: How the coders of an item stand in a round: every dimension alike (or one coder), a dimension where they differ
#: and no final code yet, every difference decided by a final code; uncoded: no valid coding nor final code.
AGREEMENT_STATES = ("agreed", "disagreed", "adjudicated", "uncoded")

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


def _code_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """(dimension, code) pairs from `dimension=code` strings or pairs; the code is a label or a code number."""
    values = [value] if isinstance(value, str) else list(value or ())
    pairs = []
    for v in values:
        if isinstance(v, str):
            dimension, _, code = v.partition("=")
        else:
            dimension, code = (str(x) for x in v)
        if not dimension.strip() or not code.strip():
            raise ValueError(f"a code filter is dimension=code (e.g. symptom=Crash), not {v!r}")
        pairs.append((dimension.strip(), code.strip()))
    return tuple(dict.fromkeys(pairs))


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

    Coding: `rounds` the items of these rounds (coded, decided or pushed to Label Studio there), `coders` issues one
    of them coded, `codes` (dimension, code) pairs that must all hold, the code a label or number, matched against
    the final code or, where there is none, any coder's code; `agreement` one of AGREEMENT_STATES in any of the
    rounds (all rounds when `rounds` is empty).
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
    rounds: tuple[str, ...] = ()
    coders: tuple[str, ...] = ()
    codes: tuple[tuple[str, str], ...] = ()
    agreement: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rounds", _strings(self.rounds))
        set_(self, "coders", _strings(self.coders))
        set_(self, "codes", _code_pairs(self.codes))
        set_(self, "agreement", self.agreement or None)
        if self.agreement is not None and self.agreement not in AGREEMENT_STATES:
            raise ValueError(f"agreement must be one of {', '.join(AGREEMENT_STATES)}, not {self.agreement!r}")
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


DISCUSSION_COLUMNS = ["author", "created_at", "updated_at", "body", "deleted", "edited", "html_url"]


@dataclass(frozen=True)
class IssueDetail:
    """One issue: its stored fields (not the raw payload), timeline oldest first, samples and fix verdicts; its
    discussion oldest first; every coder's codes, the final codes and their history, its Label Studio tasks and a
    model's suggested codes (see db.queries.labeling's issue_* reads for the columns)."""

    issue: dict[str, Any]
    timeline: pd.DataFrame
    samples: list[str]
    fix_verdicts: pd.DataFrame
    discussion: pd.DataFrame
    codings: pd.DataFrame
    invalid_codings: pd.DataFrame
    finals: pd.DataFrame
    history: pd.DataFrame
    ls_tasks: pd.DataFrame
    predictions: pd.DataFrame

    @property
    def codes(self) -> pd.DataFrame:
        """Per round × dimension: every coder's code side by side, whether they agree, and the final code."""
        return labeling_q.codes_side_by_side(self.codings, self.finals)

    @property
    def suggestions(self) -> pd.DataFrame:
        """Per round × model version × dimension: the model's suggested code beside the final code (`label suggest`)."""
        return labeling_q.suggestions_beside_finals(self.predictions, self.finals)


@dataclass(frozen=True)
class CommentRow:
    """One comment of an issue's discussion as coders read it; `deleted` ones are kept (marked) for the record."""

    author: str | None
    created_at: datetime | None
    updated_at: datetime | None
    body: str | None
    deleted: bool
    html_url: str | None = None
    author_association: str | None = None

    @property
    def edited(self) -> bool:
        """Changed after it was posted (GitHub moves `updated_at` on an edit)."""
        return bool(self.created_at and self.updated_at and self.updated_at > self.created_at)


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


# --- coding in SQL: rounds, coders, codes and agreement -----------------------------------------------------


def _in_rounds(column: Any, rounds: tuple[str, ...]) -> ColumnElement[bool]:
    """`column` (a round id) is one of the named rounds; always true when none are named."""
    return column.in_(select(ROUND.c.id).where(ROUND.c.name.in_(rounds))) if rounds else true()


def _final_for(round_id: Any, item_id: Any, dimension_id: Any) -> Any:
    return exists(
        select(literal(1)).where(
            FINAL.c.round_id == round_id, FINAL.c.item_id == item_id, FINAL.c.dimension_id == dimension_id
        )
    )


def _effective_codes(rounds: tuple[str, ...]) -> Any:
    """Per round × item × dimension the code that stands: the final code, or each coder's code where there is
    none (coder null for finals); columns round_id, item_id, dimension_id, code_id, source, coder_id."""
    finals = select(
        FINAL.c.round_id,
        FINAL.c.item_id,
        FINAL.c.dimension_id,
        FINAL.c.code_id,
        literal("final").label("source"),
        null().cast(Integer).label("coder_id"),
    ).where(_in_rounds(FINAL.c.round_id, rounds))
    coded = (
        select(
            CODING.c.round_id,
            CODING.c.item_id,
            VALUE.c.dimension_id,
            VALUE.c.code_id,
            literal("coding").label("source"),
            CODING.c.coder_id,
        )
        .select_from(VALUE.join(CODING, CODING.c.id == VALUE.c.coding_id))
        .where(
            CODING.c.valid.is_(True),
            _in_rounds(CODING.c.round_id, rounds),
            ~_final_for(CODING.c.round_id, CODING.c.item_id, VALUE.c.dimension_id),
        )
    )
    return union_all(finals, coded).subquery("effective")


def _item_states(rounds: tuple[str, ...]) -> Any:
    """One row per coded round × item: round_id, item_id and its state (agreed, disagreed or adjudicated)."""
    spread = (
        select(CODING.c.round_id, CODING.c.item_id, VALUE.c.dimension_id)
        .select_from(VALUE.join(CODING, CODING.c.id == VALUE.c.coding_id))
        .where(CODING.c.valid.is_(True), _in_rounds(CODING.c.round_id, rounds))
        .group_by(CODING.c.round_id, CODING.c.item_id, VALUE.c.dimension_id)
        .having(func.count(distinct(VALUE.c.code_id)) > 1)
        .subquery("spread")
    )
    decided = _final_for(spread.c.round_id, spread.c.item_id, spread.c.dimension_id)
    open_ = select(spread.c.round_id, spread.c.item_id).where(~decided).distinct().subquery("open_disputes")
    coded = union(
        select(CODING.c.round_id, CODING.c.item_id).where(
            CODING.c.valid.is_(True), _in_rounds(CODING.c.round_id, rounds)
        ),
        select(FINAL.c.round_id, FINAL.c.item_id).where(_in_rounds(FINAL.c.round_id, rounds)),
    ).subquery("coded")
    disputed = select(spread.c.round_id, spread.c.item_id).distinct().subquery("disputed")

    def among(sub: Any, round_id: Any, item_id: Any) -> Any:
        return exists(select(literal(1)).where(sub.c.round_id == round_id, sub.c.item_id == item_id))

    state = case(
        (among(open_, coded.c.round_id, coded.c.item_id), literal("disagreed")),
        (among(disputed, coded.c.round_id, coded.c.item_id), literal("adjudicated")),
        else_=literal("agreed"),
    )
    return select(coded.c.round_id, coded.c.item_id, state.label("state")).subquery("states")


def _issues_of(items: Any) -> Select[tuple[Any]]:
    """Issue ids of a selection of label item ids."""
    return select(ITEM.c.issue_id).where(ITEM.c.id.in_(items), ITEM.c.issue_id.is_not(None))


def _code_matches(code: str) -> ColumnElement[bool]:
    by_label = func.lower(CODE.c.label) == code.lower()
    return or_(by_label, CODE.c.code == int(code)) if code.lstrip("-").isdigit() else by_label


def _coding_where(stmt: Select[*Ts], f: IssueFilter) -> Select[*Ts]:
    """`stmt` narrowed by the coding fields of `f` (rounds, coders, codes, agreement)."""
    if f.rounds:
        members = union(
            select(CODING.c.item_id).where(_in_rounds(CODING.c.round_id, f.rounds)),
            select(FINAL.c.item_id).where(_in_rounds(FINAL.c.round_id, f.rounds)),
            select(TASK.c.item_id)
            .join(PROJECT, PROJECT.c.id == TASK.c.project_id)
            .where(_in_rounds(PROJECT.c.round_id, f.rounds)),
        )
        stmt = stmt.where(ISSUE.c.id.in_(_issues_of(members)))
    if f.coders:
        by_coder = (
            select(CODING.c.item_id)
            .join(CODER, CODER.c.id == CODING.c.coder_id)
            .where(CODER.c.name.in_(f.coders), CODING.c.valid.is_(True), _in_rounds(CODING.c.round_id, f.rounds))
        )
        stmt = stmt.where(ISSUE.c.id.in_(_issues_of(by_coder)))
    for dimension, code in f.codes:
        effective = _effective_codes(f.rounds)
        having = (
            select(effective.c.item_id)
            .join(DIM, DIM.c.id == effective.c.dimension_id)
            .join(CODE, CODE.c.id == effective.c.code_id)
            .where(DIM.c.key == dimension, _code_matches(code))
        )
        stmt = stmt.where(ISSUE.c.id.in_(_issues_of(having)))
    if f.agreement == "uncoded":
        states = _item_states(f.rounds)
        stmt = stmt.where(ISSUE.c.id.not_in(_issues_of(select(states.c.item_id))))
    elif f.agreement:
        states = _item_states(f.rounds)
        stmt = stmt.where(ISSUE.c.id.in_(_issues_of(select(states.c.item_id).where(states.c.state == f.agreement))))
    return stmt


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
    return _coding_where(stmt, f)


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
    with Session(engine) as session:
        comments = issue_discussion(session, row["id"])
    discussion = pd.DataFrame(
        [(c.author, c.created_at, c.updated_at, c.body, c.deleted, c.edited, c.html_url) for c in comments],
        columns=DISCUSSION_COLUMNS,
    )
    for column in ("created_at", "updated_at"):
        discussion[column] = pd.to_datetime(discussion[column], utc=True)
    issue_id = int(row["id"])
    return IssueDetail(
        issue=dict(row),
        timeline=timeline,
        samples=list(samples),
        fix_verdicts=fixes,
        discussion=discussion,
        codings=labeling_q.issue_codings(engine, issue_id),
        invalid_codings=labeling_q.issue_invalid_codings(engine, issue_id),
        finals=labeling_q.issue_finals(engine, issue_id),
        history=labeling_q.issue_adjudication_history(engine, issue_id),
        ls_tasks=labeling_q.issue_ls_tasks(engine, issue_id),
        predictions=labeling_q.issue_predictions(engine, issue_id),
    )


def issue_discussion(session: Session, issue_id: int) -> list[CommentRow]:
    """An issue's comments in the order they were posted (ties by GitHub id), whichever miner (REST timeline,
    REST comment stream or GraphQL) stored them; comments deleted on GitHub come marked, not dropped."""
    stmt = (
        select(
            COMMENT.c.author,
            COMMENT.c.created_at,
            COMMENT.c.updated_at,
            COMMENT.c.body,
            COMMENT.c.deleted_at,
            COMMENT.c.html_url,
            COMMENT.c.author_association,
        )
        .where(COMMENT.c.issue_id == int(issue_id))
        .order_by(COMMENT.c.created_at.is_(None), COMMENT.c.created_at, COMMENT.c.github_id, COMMENT.c.id)
    )
    return [
        CommentRow(
            author=r.author,
            created_at=r.created_at,
            updated_at=r.updated_at,
            body=r.body,
            deleted=r.deleted_at is not None,
            html_url=r.html_url,
            author_association=r.author_association,
        )
        for r in session.execute(stmt)
    ]


# --- the coding side of the list ---------------------------------------------------------------------------


def _dimension_keys(conn: Any, rounds: tuple[str, ...]) -> list[str]:
    """Dimension keys of the codebook versions the (named, else all) rounds use, in codebook order."""
    versions = select(ROUND.c.codebook_version_id)
    if rounds:
        versions = versions.where(ROUND.c.name.in_(rounds))
    position = func.min(DIM.c.position)
    stmt = select(DIM.c.key).where(DIM.c.version_id.in_(versions)).group_by(DIM.c.key).order_by(position, DIM.c.key)
    return [str(k) for k in conn.execute(stmt).scalars()]


def coding_options(engine: Engine) -> dict[str, Any]:
    """What the coding filters offer: rounds (oldest first), coders with codings, the rounds' codebook dimensions
    (codebook order) and, per dimension, the code labels in use (code order)."""
    in_use = union(select(VALUE.c.code_id), select(FINAL.c.code_id))
    versions = select(ROUND.c.codebook_version_id)
    first = func.min(CODE.c.code)
    with engine.connect() as conn:
        rounds = conn.execute(select(ROUND.c.name).order_by(ROUND.c.created_at, ROUND.c.id)).scalars().all()
        coders = (
            conn.execute(select(CODER.c.name).where(CODER.c.id.in_(select(CODING.c.coder_id))).order_by(CODER.c.name))
            .scalars()
            .all()
        )
        dimensions = _dimension_keys(conn, ())
        codes = conn.execute(
            select(DIM.c.key, CODE.c.label)
            .select_from(CODE.join(DIM, DIM.c.id == CODE.c.dimension_id))
            .where(DIM.c.version_id.in_(versions), CODE.c.id.in_(in_use))
            .group_by(DIM.c.key, CODE.c.label)
            .order_by(DIM.c.key, first, CODE.c.label)
        ).all()
    by_dimension: dict[str, list[str]] = {d: [] for d in dimensions}
    for key, label in codes:
        by_dimension.setdefault(key, []).append(label)
    return {"rounds": list(rounds), "coders": list(coders), "dimensions": dimensions, "codes": by_dimension}


def issue_coding_columns(engine: Engine, f: IssueFilter, issues: list[str]) -> pd.DataFrame:
    """For listed issues (`owner/name#number`), within `f.rounds`: repository, number, `agreement` (the state, per
    round when several) and one column per codebook dimension with the code that stands: the final code, else
    the coders' codes (`A | B` when they differ); None where the issue has none."""
    refs = [IssueRef.parse(i) for i in issues]
    pairs = [(r.repository, r.number) for r in refs]
    effective, states = _effective_codes(f.rounds), _item_states(f.rounds)
    in_list = tuple_(REPO.c.full_name, ISSUE.c.number).in_(pairs) if pairs else literal(False)
    issue_of = ITEM.join(ISSUE, ISSUE.c.id == ITEM.c.issue_id).join(REPO, REPO.c.id == ISSUE.c.repository_id)
    codes_stmt = (
        select(REPO.c.full_name, ISSUE.c.number, DIM.c.key, effective.c.source, CODER.c.name, CODE.c.label, CODE.c.code)
        .select_from(
            effective.join(ITEM, ITEM.c.id == effective.c.item_id)
            .join(ISSUE, ISSUE.c.id == ITEM.c.issue_id)
            .join(REPO, REPO.c.id == ISSUE.c.repository_id)
            .join(DIM, DIM.c.id == effective.c.dimension_id)
            .join(CODE, CODE.c.id == effective.c.code_id)
            .outerjoin(CODER, CODER.c.id == effective.c.coder_id)
        )
        .where(in_list)
        .order_by(REPO.c.full_name, ISSUE.c.number, DIM.c.key, CODER.c.name, CODE.c.code)
    )
    states_stmt = (
        select(REPO.c.full_name, ISSUE.c.number, ROUND.c.name, states.c.state)
        .select_from(states.join(issue_of, ITEM.c.id == states.c.item_id).join(ROUND, ROUND.c.id == states.c.round_id))
        .where(in_list)
        .order_by(ROUND.c.created_at, ROUND.c.id)
    )
    with engine.connect() as conn:
        dimensions = _dimension_keys(conn, f.rounds)
        codes = conn.execute(codes_stmt).all() if pairs else []
        round_states = conn.execute(states_stmt).all() if pairs else []
    cells: dict[tuple[str, int, str], dict[str, list[str]]] = {}
    for repo, number, key, source, _coder, label, _code in codes:
        shown = cells.setdefault((repo, number, key), {"final": [], "coding": []})[source]
        if label not in shown:
            shown.append(label)
    per_issue: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for repo, number, rnd, state in round_states:
        per_issue.setdefault((repo, number), []).append((rnd, state))
    rows = []
    for repo, number in dict.fromkeys(pairs):
        found = per_issue.get((repo, number), [])
        agreement = found[0][1] if len(found) == 1 else "; ".join(f"{r}: {s}" for r, s in found) or "uncoded"
        row: dict[str, Any] = {"repository": repo, "number": number, "agreement": agreement}
        for key in dimensions:
            cell = cells.get((repo, number, key))
            row[key] = " | ".join(cell["final"] or cell["coding"]) if cell else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["repository", "number", "agreement", *dimensions])
