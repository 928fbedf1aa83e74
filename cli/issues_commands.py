"""`interop issues …`: samples for coding, fix-rule re-evaluation, and a quick look at mined issues."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from cli.common import console, engine
from cli.output import Format, emit, format_option, new_table, out_option, records
from db.errors import InteropError
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Mined GitHub issues: samples, fix-link rule, listing.", no_args_is_help=True)


@app.command("sample")
def sample(
    repo: str = typer.Option(None, "--repo", help="owner/name of a repository (mined, or known from coding sheets)."),
    n: int = typer.Option(..., "--n", help="Sample size."),
    seed: int = typer.Option(..., "--seed", help="Random seed (same seed, same issues -> same members)."),
    name: str = typer.Option(..., "--name", help="Unique sample name, e.g. pilot."),
    from_round: str = typer.Option(
        None, "--from-round", help="Only issues coded in this round (e.g. failureanalysis from the study's sheet)."
    ),
    mined_only: bool = typer.Option(False, "--mined-only", help="Only mined issues (not those known only by URL)."),
    fixed_only: bool = typer.Option(False, "--fixed-only", help="Only fix-linked issues."),
    rule_version: str = typer.Option(DEFAULT_FIX_RULE_VERSION, "--rule-version", help="Fix rule used by --fixed-only."),
    label: str | None = typer.Option(None, "--label", help="Only issues with this label."),
    state: Literal["open", "closed"] | None = typer.Option(None, "--state", help="Only issues in this state."),
) -> None:
    """Draw and store a named reproducible sample of a repository's issues and/or a coded round's; the same name and
    arguments again is a no-op."""
    from miners.github.samples import draw_sample

    result = draw_sample(
        engine(),
        name=name,
        repo=repo,
        n=n,
        seed=seed,
        fixed_only=fixed_only,
        rule_version=rule_version,
        label=label,
        state=state,
        from_round=from_round,
        mined_only=mined_only,
    )
    population = " and ".join(
        p for p in (f"of {repo}" if repo else "", f"coded in round {from_round!r}" if from_round else "") if p
    )
    if result.created:
        console.print(
            f"sample {name!r}: {len(result.refs)} of {result.population} issues {population} stored", markup=False
        )
    else:
        console.print(f"sample {name!r} already exists with these arguments: nothing changed", markup=False)
    if repo and not from_round:
        console.print("members: " + ", ".join(f"#{num}" for num in result.numbers), markup=False)
    else:
        console.print("members: " + ", ".join(result.refs), markup=False)


@app.command("relink")
def relink(
    rule_version: str = typer.Option(
        DEFAULT_FIX_RULE_VERSION,
        "--rule-version",
        help="Built-in version or one defined under \\[fix_rules.NAME] in interop.toml.",
    ),
    repo: str | None = typer.Option(None, "--repo", help="Only this repository."),
) -> None:
    """Re-evaluate the fix-link rule on stored timelines (no GitHub requests)."""
    from db.config import load_toml
    from miners.github.fixrule import load_rule
    from miners.github.loader import relink as do_relink

    rule = load_rule(rule_version, load_toml().get("fix_rules") or {})
    counts = do_relink(engine(), rule, repo)
    console.print(
        f"rule {rule_version}: {counts['fix_linked']} of {counts['issues']} issues with timelines are fix-linked"
    )


@app.command("list")
def list_issues(
    repo: list[str] = typer.Option([], "--repo", help="Only these repositories (owner/name, as mined; repeatable)."),
    label: list[str] = typer.Option(
        [], "--label", help="Issues with any (see --label-mode) of these labels (repeatable)."
    ),
    label_mode: Literal["any", "all"] = typer.Option(
        "any", "--label-mode", help="Issues with any or all of the --labels."
    ),
    state: Literal["open", "closed"] | None = typer.Option(None, "--state", help="Only this state (default: both)."),
    since: datetime | None = typer.Option(None, "--since", formats=["%Y-%m-%d"], help="Opened on or after (UTC)."),
    until: datetime | None = typer.Option(None, "--until", formats=["%Y-%m-%d"], help="Opened on or before (UTC)."),
    text: str | None = typer.Option(None, "--text", help="Title or body contains (case-insensitive)."),
    fixed_only: bool = typer.Option(False, "--fixed-only", help="Only issues linked to a fix by --rule-version."),
    rule_version: str = typer.Option(
        DEFAULT_FIX_RULE_VERSION, "--rule-version", help="Fix rule whose verdicts are shown."
    ),
    sample_name: str | None = typer.Option(None, "--sample", help="Members of this sample, in drawn order."),
    with_unmined: bool = typer.Option(
        False,
        "--with-unmined",
        help="Also issues known only from coding sheets (their title is the sheet's until mined).",
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many issues."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """List mined issues (newest first) with their fix-link verdict."""
    from dataclasses import replace

    from db.queries.issues import IssueFilter, filter_options, issue_list, issue_summary

    options = filter_options(engine())
    for values, kind, known in (
        (repo, "repository", options["repositories"]),
        ([sample_name] if sample_name else [], "sample", options["samples"]),
    ):
        for value in values:
            if value not in known:
                raise InteropError(f"no {kind} named {value!r} in the store (known: {', '.join(known) or 'none'})")
    selected = IssueFilter(
        repositories=tuple(repo),
        labels=tuple(label),
        label_mode=label_mode,
        state=state,
        since=since,
        until=until,
        text=text,
        sample=sample_name,
        fix_linked=True if fixed_only else None,
        rule_version=rule_version,
        mined=None if with_unmined else True,
    )
    frame = issue_list(engine(), selected, limit=limit)

    def render(to: Console) -> None:
        table = new_table("repo", "#", "state", "fixed", "labels", "title", numeric=("#",))
        for row in frame.itertuples():
            fixed = (
                "?" if row.fix_linked is None or str(row.fix_linked) == "<NA>" else ("yes" if row.fix_linked else "no")
            )
            title = _text(row.title)
            if row.title_source == "sheet":
                title = f"{title} (from sheet)"
            table.add_row(row.repository, str(row.number), _text(row.state), fixed, ", ".join(row.labels or []), title)
        to.print(table)
        to.print(f"{len(frame)} issue(s)")

    emit(fmt, out, frame, render=render)
    if fmt != "table" or with_unmined:
        return
    unmined = issue_summary(engine(), replace(selected, mined=False))
    if not unmined.empty:
        where = ", ".join(f"{n} of {name}" for name, n in zip(unmined["repository"], unmined["issues"], strict=True))
        console.print(
            f"not listed: {int(unmined['issues'].sum())} issue(s) known only by URL from coding sheets ({where}); "
            f"`--with-unmined` lists them; `interop mine github --repo OWNER/NAME` fetches their details"
        )


def _text(value: object) -> str:
    """A cell as text: missing (None, or NaN in a column pandas made float) is empty."""
    return value if isinstance(value, str) else ""


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="owner/name#number"),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """One issue: its text and discussion, every coder's codes side by side, the final codes with their
    adjudication history, its Label Studio tasks, timeline and fix verdicts."""
    from db.config import get_settings
    from db.queries.issues import IssueRef, issue_detail
    from db.queries.labeling import ls_task_url

    try:
        issue = IssueRef.parse(ref)
    except ValueError as exc:
        raise InteropError(str(exc)) from None
    detail = issue_detail(engine(), issue)
    if detail is None:
        raise InteropError(f"{ref} is not in the store")
    base = get_settings().label_studio_url
    tasks = detail.ls_tasks.assign(
        url=[ls_task_url(base, t.ls_project_id, t.ls_task_id) for t in detail.ls_tasks.itertuples(index=False)]
    )
    render = _show_table(detail, tasks, issue.repository, str(issue.number))
    if fmt != "table" or out is not None:
        document = {
            "issue": detail.issue,
            "timeline": records(detail.timeline),
            "verdicts": records(detail.fix_verdicts),
            "discussion": records(detail.discussion),
            "codes": records(detail.codes),
            "codings": records(detail.codings),
            "invalid_codings": records(detail.invalid_codings),
            "finals": records(detail.finals),
            "adjudication_history": records(detail.history),
            "label_studio_tasks": records(tasks),
            "suggestions": records(detail.suggestions),
        }
        emit(fmt, out, detail.timeline, document=json.loads(json.dumps(document, default=str)), render=render)
        return
    render(console)


CODE_HEADERS = {"agree": "coders agree", "decided_by": "decided by"}
SUGGESTION_HEADERS = {"model_version": "model version", "matches_final": "matches final"}
HISTORY_HEADERS = {
    "previous_code": "was code",
    "previous_label": "was",
    "previous_decided_by": "was decided by",
    "decided_by": "decided by",
    "decided_at": "when (UTC)",
}


def _when(value: Any) -> str:
    """A time as the tables write it (UTC, to the minute); — when unknown."""
    import pandas as pd

    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _yes_no(value: Any) -> str:
    """A nullable boolean cell as the tables write it: yes, no, or — when unknown."""
    import pandas as pd

    return "—" if value is None or value is pd.NA else ("yes" if value else "no")


def _indented(text: str | None, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text or "").replace("\r\n", "\n").split("\n"))


def _show_table(detail: Any, tasks: Any, repo: str, num: str) -> Callable[[Console], None]:
    """`issues show` for reading: the issue and its body, codes per round, history, tasks, discussion, timeline."""
    import pandas as pd

    from cli.output import frame_table

    fields, timeline, verdicts = detail.issue, detail.timeline, detail.fix_verdicts
    mined = fields.get("hydrated", True)

    def render(console: Console) -> None:
        if not mined:
            if fields.get("title"):
                console.print(f"{repo}#{num} {fields['title']}  (title from a coding sheet)", markup=False)
            what = "state, body, discussion" if fields.get("title") else "title, state, body, discussion"
            console.print(
                f"{repo}#{num} is known only by its URL ({fields['html_url']}), from a coding sheet; its "
                f"{what} and timeline come with `interop mine github --repo {repo}`",
                markup=False,
            )
            if fields.get("sheet_description"):
                console.print(f"description (from the coding sheet): {fields['sheet_description']}", markup=False)
        else:
            console.print(f"{repo}#{num} {fields['title']}  ({fields['state']}, {fields['html_url']})", markup=False)
            console.print(
                f"labels: {', '.join(fields['labels'] or []) or 'none'}; author {fields['author']}; "
                f"created {fields['created_at']}; closed {fields['closed_at']}",
                markup=False,
            )
            console.print("body:")
            console.print(_indented(fields["body"] or "(no body)"), markup=False)
        codes = detail.codes
        if codes.empty:
            console.print("codes: not coded in any round")
        for rnd, part in codes.groupby("round", sort=False):
            shown = part.drop(columns="round").assign(agree=part["agree"].map(_yes_no))
            if part["agree"].isna().all():  # nobody coded it in this round: the final codes alone
                shown = shown.drop(columns="agree")
            console.print(frame_table(shown, title=f"codes in round {rnd}", headers=CODE_HEADERS))
        for bad in detail.invalid_codings.itertuples(index=False):
            console.print(
                f"not counted: {bad.coder}'s coding in round {bad.round} broke the codebook "
                f"({'; '.join(bad.problems or [])})",
                markup=False,
            )
        if not detail.history.empty:
            history = detail.history.assign(decided_at=detail.history["decided_at"].map(_when))
            console.print(frame_table(history, title="adjudication history (oldest first)", headers=HISTORY_HEADERS))
        suggestions = detail.suggestions
        if not suggestions.empty:
            shown = suggestions.assign(
                score=suggestions["score"].map("{:.2f}".format),
                matches_final=suggestions["matches_final"].map(_yes_no),
            )
            title = "model suggestions (`label suggest`: never codes, never counted)"
            console.print(frame_table(shown, title=title, headers=SUGGESTION_HEADERS))
        for t in tasks.itertuples(index=False):
            whose = f"{t.coder}'s " if isinstance(t.coder, str) else ""
            console.print(f"label studio: round {t.round}, {whose}{t.purpose} project: {t.url}", markup=False)
        discussion = detail.discussion
        if mined:
            console.print(f"discussion ({len(discussion)} comment{'s' if len(discussion) != 1 else ''}):")
        for c in discussion.itertuples(index=False):
            edited = (
                f" (edited {_when(c.updated_at)})"
                if pd.notna(c.updated_at) and pd.notna(c.created_at) and c.updated_at > c.created_at
                else ""
            )
            console.print(f"  {c.author or 'unknown author'}, {_when(c.created_at)}{edited}:", markup=False)
            console.print(_indented(c.body), markup=False)
        if not timeline.empty:
            console.print("timeline:")
        for ev in timeline.itertuples():
            extra = (
                ev.commit_id
                if isinstance(ev.commit_id, str)
                else (
                    f"{ev.source_repository}#{ev.source_number} ({ev.source_state})"
                    if isinstance(ev.source_repository, str)
                    else ""
                )
            )
            console.print(f"  {ev.created_at}  {ev.event:<18} {ev.actor or '':<16} {extra}", markup=False)
        for v in verdicts.itertuples():
            why = "; ".join(e.get("why", "") for e in v.evidence or [])
            console.print(f"rule {v.rule_version}: {'fix-linked' if v.fix_linked else 'not fix-linked'} {why}")

    return render
