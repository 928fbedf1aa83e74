"""`interop experiment …`: run conversion campaigns, watch them, re-judge them, import the study's results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from cli.common import console, engine
from cli.output import Format, emit, format_option, new_table, out_option, records, split_list
from db.errors import InteropError
from db.models.failures import DEFAULT_SIGNATURE_RULE

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Conversion campaigns: models through converters, checked in onnxruntime.", no_args_is_help=True)


def _csv_ints(values: list[str] | None) -> list[int] | None:
    if values is None:
        return None
    try:
        return [int(v) for v in split_list(values)]
    except ValueError as exc:
        raise InteropError(f"expected integers (repeat the option or comma-separate), got {values!r}") from exc


def _csv(values: list[str] | None) -> list[str] | None:
    return None if values is None else split_list(values)


@app.command("run")
def run(
    spec_file: Path | None = typer.Argument(None, help="campaign.toml (top level or a \\[campaign] table)"),
    preset: Literal["quick", "real"] | None = typer.Option(
        None, "--preset", help="quick (~2 min demo) or real (offline architectures)"
    ),
    name: str | None = typer.Option(None, help="campaign name (re-running a name resumes it)"),
    sources: list[str] | None = typer.Option(None, help="sources, repeated or comma-separated: nnsmith-torch,…"),
    converters: list[str] | None = typer.Option(None, help="torch.onnx-torchscript,torch.onnx-dynamo,tf2onnx"),
    opsets: list[str] | None = typer.Option(None, help="opsets, e.g. 14,17"),
    node_counts: list[str] | None = typer.Option(None, help="NNSmith node counts, e.g. 5,10,20"),
    seeds: list[str] | None = typer.Option(None, help="model seeds, e.g. 0,1,2"),
    input_seeds: list[str] | None = typer.Option(None, help="seeds of the random inputs"),
    inputs: int | None = typer.Option(None, "--inputs", help="K random inputs per run"),
    atol: float | None = typer.Option(None, help="absolute tolerance"),
    rtol: float | None = typer.Option(None, help="relative tolerance"),
    timeout: float | None = typer.Option(None, help="seconds per conversion run before the worker is killed"),
    memory_mb: int | None = typer.Option(None, help="RSS limit per worker (MB)"),
    workers: int | None = typer.Option(None, help="parallel workers (default: CPU cores)"),
    dask: str | None = typer.Option(None, help="'local' (LocalCluster) or tcp://HOST:8786"),
    plugins: list[str] | None = typer.Option(
        None, help="modules that register extra sources/converters (comma-separated)"
    ),
) -> None:
    """Run (or resume) a campaign; finished runs are skipped, so re-running is safe."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from db.config import get_settings
    from experiments.campaign import prepare, run_campaign
    from experiments.spec import load_spec

    overrides = {
        "name": name,
        "sources": _csv(sources),
        "converters": _csv(converters),
        "opsets": _csv_ints(opsets),
        "node_counts": _csv_ints(node_counts),
        "seeds": _csv_ints(seeds),
        "input_seeds": _csv_ints(input_seeds),
        "inputs_per_model": inputs,
        "atol": atol,
        "rtol": rtol,
        "timeout_s": timeout,
        "memory_mb": memory_mb,
        "workers": workers,
        "dask": dask,
        "plugins": _csv(plugins),
    }
    if spec_file is None and preset is None and not any(v is not None for v in overrides.values()):
        raise InteropError("give a campaign.toml, --preset quick, or flags such as --sources")
    spec = load_spec(spec_file, preset, overrides)
    planned = prepare(engine(), spec)  # a spec that cannot run is one error line, before any output
    data_dir = Path(get_settings().data_dir)
    console.print(
        f"campaign [bold]{spec.name}[/]: {', '.join(spec.sources)} -> {', '.join(spec.converters)}, "
        f"opsets {spec.opsets}, {spec.workers} worker(s){' on Dask ' + spec.dask if spec.dask else ''}"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("runs", total=None)

        def progress(done: int, total: int, last: Any) -> None:
            bar.update(task, completed=done, total=total, description=f"runs ({last})" if last else "runs")
            if not console.is_terminal and last and (done % 10 == 0 or done == total):
                console.print(f"  {done}/{total} runs")  # logs and pipes get plain progress lines

        result = run_campaign(engine(), spec, data_dir, progress, planned)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for (converter, asked, got), n in sorted(result.opset_changes.items()):
        console.print(
            f"note: {n} {converter} run(s) asked for opset {asked} produced opset {got}; "
            "per-opset analyses use the produced opset",
            style="yellow",
            markup=False,
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "nothing new"
    console.print(
        f"{result.planned_runs} runs planned, {result.skipped_runs} already done; this time: {counts}; "
        f"{result.replaced_workers} worker(s) replaced"
    )
    _print_status(spec.name)


def _planned_runs(spec: dict) -> str:
    """How many runs a live campaign's spec expands to ('?' if its plug-ins are not available here)."""
    from experiments.campaign import plan
    from experiments.spec import CampaignSpec

    try:
        return str(sum(len(p["runs"]) for p in plan(CampaignSpec(**spec))))
    except Exception:
        return "?"


def _check_campaign(name: str | None) -> None:
    """A named campaign must exist: a typo is an error, not an empty result."""
    from db.queries.experiments import campaign_names

    known = campaign_names(engine())
    if name is not None and name not in known:
        raise InteropError(f"no campaign named {name!r} (known: {', '.join(known) or 'none yet'})")


def _print_status(name: str | None, fmt: str = "table", out: Path | None = None) -> None:
    from db.queries.experiments import campaign_summary, opset_changes
    from db.queries.experiments import campaigns as campaign_list

    campaigns = campaign_list(engine()).iloc[::-1]  # oldest first
    if campaigns.empty and fmt == "table" and out is None:
        console.print("no campaigns yet")
        return
    if name is not None:
        campaigns = campaigns[campaigns["campaign"] == name]
    planned = [_planned_runs(c.spec) if c.kind == "live" else str(c.runs) for c in campaigns.itertuples(index=False)]
    campaigns = campaigns.assign(planned_runs=[int(p) if p.isdigit() else None for p in planned])
    summary = campaign_summary(engine(), name)
    changes = opset_changes(engine(), name)
    document = {"campaigns": records(campaigns), "runs": records(summary), "opset_changes": records(changes)}

    def render(to: Console) -> None:
        for c, plan in zip(campaigns.itertuples(index=False), planned, strict=True):
            finished = c.finished_at is not None and str(c.finished_at) != "NaT"
            state = f"finished {c.finished_at:%Y-%m-%d %H:%M} UTC" if finished else "not finished"
            to.print(f"[bold]{c.campaign}[/] ({c.kind}): {c.runs}/{plan} runs stored, {c.models} models, {state}")
        table = new_table(
            "campaign",
            "converter",
            "exporter",
            "status",
            "runs",
            numeric=("runs",),
            title="conversion runs by campaign, converter and status",
        )
        for row in summary.itertuples(index=False):
            if row.runs == 0:
                table.add_row(row.campaign, "", "", "(no runs yet)", "0")
            else:
                table.add_row(row.campaign, row.converter, row.exporter, row.status, str(row.runs))
        to.print(table)
        for row in changes.itertuples(index=False):
            to.print(
                f"note: {row.campaign}: {row.runs} {row.converter} ({row.exporter}) run(s) asked for opset "
                f"{row.requested_opset} produced opset {row.produced_opset}",
                style="yellow",
                markup=False,
            )

    emit(fmt, out, summary, document=document, render=render)


@app.command("status")
def status(
    campaign: str | None = typer.Option(None, "--campaign", help="Only this campaign (default: every campaign)."),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Runs per campaign, converter and outcome; campaigns without runs too.

    JSON: {"campaigns": [...], "runs": [...], "opset_changes": [...]}; CSV: the runs table."""
    _check_campaign(campaign)
    _print_status(campaign, fmt, out)


@app.command("rescore")
def rescore(
    atol: float = typer.Option(..., help="new absolute tolerance"),
    rtol: float = typer.Option(0.0, help="new relative tolerance (exact for the stored rtol grid)"),
    campaign: str | None = typer.Option(None, help="only this campaign, live or historical (default: every live one)"),
) -> None:
    """Re-judge the live campaigns' stored runs at a new tolerance from their raw numbers; nothing is re-run."""
    from experiments.rescore import rescore as do_rescore

    _check_campaign(campaign)
    changed = do_rescore(engine(), atol, rtol, campaign)
    scope = f"campaign {campaign!r}" if campaign else "live campaigns (historical imports: name one with --campaign)"
    console.print(
        f"re-judged {changed['judged']} runs at atol={atol:g} rtol={rtol:g} in {scope}: "
        f"{changed['passed']} passed, {changed['mismatch']} mismatch ({changed['changed']} changed)"
    )
    _print_status(campaign)


@app.command("import-results")
def import_results(
    directory: Path = typer.Argument(..., help="exporter_test_results/ with torch/ and tensorflow/ JSON files"),
    name: str = typer.Option("study-exporter-results", help="name of the historical campaign"),
) -> None:
    """Load the study's exporter results as a historical campaign (idempotent)."""
    from experiments.study_import import import_exporter_results

    counts = import_exporter_results(engine(), directory, name)
    if counts["new_runs"]:
        console.print(
            f"imported {counts['models']:,} models, {counts['runs']:,} runs "
            f"({counts['new_runs']:,} new) into campaign {name!r}"
        )
    else:
        console.print(f"nothing new: {counts['runs']:,} runs already stored in campaign {name!r}")
    _print_status(name)


@app.command("repro")
def repro(
    run_id: int = typer.Argument(..., help="the conversion run's id (see the app's run detail or `export query`)"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="folder for campaign.toml, the produced ONNX, the worker log, result.json "
        "(default: DATA_DIR/repro/run-ID)",
    ),
    show: bool = typer.Option(False, "--show", help="only print the equivalent campaign.toml; run nothing"),
) -> None:
    """Re-run exactly one stored run (same model, converter plug-in, opset, inputs, tolerance, plug-ins, limits)
    in an isolated worker and compare with what was stored; nothing is written to the database.

    Exit code 0 when the outcome (status, stage, error class) is the same, 1 when it differs."""
    from db.config import get_settings
    from experiments.repro import load_recipe, reproduce

    if show:
        console.print(load_recipe(engine(), run_id).toml(), markup=False, end="")
        return
    folder = out or Path(get_settings().data_dir) / "repro" / f"run-{run_id}"
    console.print(f"re-running run {run_id} in {folder} …", markup=False)
    done = reproduce(engine(), run_id, folder)
    for note in done.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    _print_reproduction(done)
    console.print(f"equivalent command: interop experiment run {done.spec_path}", markup=False)
    console.print(f"details: {done.result_path}", markup=False)
    if not done.same_outcome:
        raise typer.Exit(1)


def _print_reproduction(done: Any) -> None:
    from rich.table import Table

    from experiments.repro import COMPARED_FIELDS

    table = Table(title=f"run {done.recipe.run_id}: {done.recipe.model.get('name')}")
    table.add_column("")
    table.add_column("stored", overflow="fold")
    table.add_column("now", overflow="fold")
    for name in COMPARED_FIELDS:
        stored, now = done.recipe.stored.get(name), done.now.get(name)
        mark = "" if stored == now else "  ← differs"
        table.add_row(
            name.replace("_", " "),
            str(stored) if stored is not None else "—",
            f"{now if now is not None else '—'}{mark}",
        )
    if done.now.get("onnx_path"):
        table.add_row("produced ONNX", "", str(done.now["onnx_path"]))
    console.print(table)
    verdict = "same outcome" if done.same_outcome else "different outcome"
    console.print(f"reproduced run {done.recipe.run_id}: {verdict} ({done.now.get('status')})", markup=False)


@app.command("reduce")
def reduce(
    run_id: int = typer.Argument(..., help="a mismatching conversion run's id"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="folder for reduced.onnx, inputs.npz, expected.npz, actual.npz, repro.py, reduction.json "
        "(default: DATA_DIR/reduce/run-ID)",
    ),
) -> None:
    """Minimal repro of a mismatch: the first node where onnxruntime departs from the source framework's
    intermediate values (else from the ONNX reference evaluator) at the run's atol/rtol, whether the converter or
    onnxruntime caused it, a reduced model that still mismatches and a script showing it; stored with the run."""
    from db.config import get_settings
    from experiments.reduce import reduce_run

    folder = out or Path(get_settings().data_dir) / "reduce" / f"run-{run_id}"
    done = reduce_run(engine(), run_id, folder)
    against = (
        f"the source framework ({done.matched_values} ONNX values matched)"
        if done.basis == "source"
        else "the reference evaluator"
    )
    cause = {
        "converter": "converter-caused (onnxruntime agrees with the ONNX spec)",
        "runtime": "runtime-caused (onnxruntime departs from the ONNX spec)",
        "both": "converter and runtime (onnxruntime, the spec and the source all differ)",
    }.get(done.cause or "", "cause not told")
    if done.status != "reduced":
        tail = {
            "converter": "the outputs still differ from the source in values no source tensor was matched to, "
            "onnxruntime agreeing with the spec: converter-caused",
            "runtime": "the outputs differ from the source only while no intermediate value is exposed: "
            "onnxruntime's graph optimisations (fused kernels), runtime-caused",
        }.get(done.cause or "", "no intermediate divergence")
        console.print(
            f"run {run_id}: no node of its {done.nodes_before}-node model departs from {against} at "
            f"atol={done.atol:g} rtol={done.rtol:g}; {tail} (no_divergence); stored",
            markup=False,
        )
        return
    console.print(
        f"run {run_id}: first diverging node {done.node_name!r} ({done.operator}, node {done.node_index}) against "
        f"{against}; {cause}; {done.nodes_before} → {done.nodes_after} nodes in {done.seconds:.1f} s",
        markup=False,
    )
    console.print(f"repro: python {folder / 'repro.py'}", markup=False)


@app.command("operators")
def operators(
    campaign: str | None = typer.Option(None, help="only this campaign's runs"),
    diverging: bool = typer.Option(
        False,
        "--diverging",
        help="count a reduced mismatch for its first diverging operator only, not every operator of its model",
    ),
    top: int = typer.Option(30, min=1, help="table: rows to print (json and csv hold every row)"),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Operators vs failures (H1) on the produced ONNX graphs: runs, failures and mismatches per operator,
    converter and exporter; with --diverging a mismatching run that `experiment reduce` reduced counts only for
    the operator of its first diverging node (split by converter- or runtime-caused)."""
    from db.queries.failures import operator_failures

    _check_campaign(campaign)
    frame = operator_failures(engine(), campaign, diverging=diverging)
    if frame.empty and fmt == "table" and out is None:
        console.print("no runs with a produced ONNX graph to analyse")
        return

    def render(to: Console) -> None:
        shown = frame.head(top)
        names = ["operator", "converter", "exporter", "runs", "failures", "mismatches", "any node", "diverging"]
        numeric = names[3:]
        if diverging:
            names += ["converter-caused", "runtime-caused"]
            numeric = names[3:]
        what = "first diverging operator where reduced" if diverging else "every operator of the model"
        table = new_table(
            *names, numeric=numeric, title=f"operators vs failures ({len(frame)} rows; mismatches: {what})"
        )
        for row in shown.itertuples(index=False):
            cells = [row.operator, row.converter, row.exporter, f"{row.runs:,}", f"{row.failures:,}"]
            rate = f" ({row.mismatch_rate:.0%})" if row.mismatch_rate == row.mismatch_rate else ""
            cells += [f"{row.mismatches:,}{rate}", f"{row.mismatches_any_node:,}", f"{row.diverging:,}"]
            if diverging:
                cells += [f"{row.converter_caused:,}", f"{row.runtime_caused:,}"]
            table.add_row(*cells)
        to.print(table)

    emit(fmt, out, frame, render=render)


@app.command("analyze")
def analyze(
    analysis: Literal["outcomes", "operators", "sequences"] = typer.Argument(..., help="which analysis"),
    campaign: str | None = typer.Option(None, help="only this campaign"),
    level: Literal["source", "onnx"] = typer.Option(
        "source", help="operators: source (framework ops) or onnx (ONNX node types)"
    ),
    length: int = typer.Option(2, help="sequences: nodes per path"),
    top: int = typer.Option(20, min=1, help="table: rows to print (json and csv hold every row)"),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
) -> None:
    """Outcome rates (converter × node count × produced opset), per-operator rates (H1), operator sequences (H2).

    Opsets are those of the produced ONNX models (read from the files); what was requested is beside them."""
    from db.queries.experiments import operator_rates, outcome_rates, sequence_comparison

    what = analysis
    _check_campaign(campaign)
    if what == "outcomes":
        frame = outcome_rates(engine(), campaign)
    elif what == "operators":
        if level not in ("source", "onnx"):
            raise InteropError("--level must be 'source' or 'onnx'")
        frame = operator_rates(engine(), campaign, level=level)
    elif what == "sequences":
        if length < 1:
            raise InteropError("--length must be at least 1")
        frame = sequence_comparison(engine(), campaign, length=length)
    else:
        raise InteropError(f"unknown analysis {what!r}: choose outcomes, operators or sequences")
    if frame.empty and fmt == "table" and out is None:
        console.print("no runs to analyse")
        return
    emit(fmt, out, frame, render=lambda to: to.print(_terminal_table(frame, what, top)))


def _terminal_table(frame: Any, what: str, top: int) -> Any:
    """The analysis as a table that fits a terminal: `n (p%)` instead of a count and a rate column, no all-zero
    count columns (named in the caption instead); json and csv keep every column."""
    import pandas as pd

    columns = list(frame.columns)
    rate_of = {}
    for col in columns:
        if col.endswith("_rate"):
            base = next((b for b in (col[:-5], col[:-5] + "s", col[:-5] + "es") if b in columns), None)
            if base is not None:
                rate_of[base] = col
    zero = [c for c in columns if c in rate_of and frame[c].dtype.kind in "iu" and not frame[c].any()]
    shown = [c for c in columns if c not in rate_of.values() and c not in zero]
    notes = ["opset: of the produced ONNX model (— none produced); requested: what the converter was asked"]
    if "produced_opset" not in columns:
        notes = []
    if zero:
        notes.append(f"none in any row: {', '.join(zero)}")
    caption = "\n".join(notes) or None
    title = f"{what} ({len(frame)} rows{', first ' + str(top) if len(frame) > top else ''})"
    headers = {"node_count": "nodes", "produced_opset": "opset", "requested_opsets": "requested"}
    names = [headers.get(col, col.replace("_", " ")) for col in shown]
    numeric = [n for col, n in zip(shown, names, strict=True) if frame[col].dtype.kind in "iuf" or col in rate_of]
    table = new_table(*names, numeric=numeric, title=title)
    table.caption = caption

    def cell(row: Any, col: str) -> str:
        value = row[col]
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "—"
        if col in rate_of:
            rate = row[rate_of[col]]
            return f"{value} ({rate:.0%})" if isinstance(rate, float) and rate == rate else str(value)
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    for _, row in frame.head(top).iterrows():
        table.add_row(*[cell(row, c) for c in shown])
    return table


def _signature_rule(version: str) -> Any:
    """The signature rule `version` (built in, or `[signature_rules.NAME]` in interop.toml); a typo is an error."""
    from db.config import load_toml
    from experiments.signatures import load_rule

    return load_rule(version, load_toml().get("signature_rules") or {})


@app.command("signatures")
def signatures(
    campaign: str | None = typer.Option(None, help="only this campaign's runs (default: every run)"),
    rule_version: str = typer.Option(
        DEFAULT_SIGNATURE_RULE,
        "--rule-version",
        help="built-in rule or one defined under \\[signature_rules.NAME] in interop.toml",
    ),
    links: bool = typer.Option(True, "--links/--no-links", help="also rank upstream issues for each signature"),
    top: int = typer.Option(5, min=1, help="candidate issues kept per signature"),
) -> None:
    """(Re)compute the failure signature of every failed, crashed or mismatching run under a rule version, and
    rank the converter's stored issues for each; idempotent, other rule versions and users' decisions are kept."""
    from experiments.failure_links import link_signatures
    from experiments.signatures import compute_signatures

    _check_campaign(campaign)
    rule = _signature_rule(rule_version)
    counts = compute_signatures(engine(), rule, campaign)
    ranked = link_signatures(engine(), rule.version, campaign, top) if links else None
    scope = f"campaign {campaign!r}" if campaign else "all campaigns"
    console.print(
        f"rule {rule.version}: {counts['runs']:,} runs in {scope} have {counts['signatures']:,} distinct "
        f"signatures ({counts['changed']:,} run(s) changed)",
        markup=False,
    )
    if ranked is not None:
        console.print(
            f"upstream candidates: {ranked['candidates']:,} for {ranked['signatures']:,} signatures among "
            f"{ranked['issues']:,} stored issues of the converters' repositories",
            markup=False,
        )


@app.command("link")
def link(
    signature: str = typer.Argument(..., help="a signature (its first 6+ hex digits, see `experiment failures`)"),
    issue: str = typer.Argument(..., help="owner/name#N, #N or N (of the converter's repositories)"),
    confirm: bool = typer.Option(False, "--confirm", help="the issue reports this failure"),
    reject: bool = typer.Option(False, "--reject", help="the issue does not report this failure"),
    note: str | None = typer.Option(None, help="why (stored with the decision)"),
    rule_version: str = typer.Option(DEFAULT_SIGNATURE_RULE, "--rule-version", help="the rule the signature is under"),
) -> None:
    """Confirm or reject an upstream issue for a signature; decisions survive re-ranking and rule changes."""
    from experiments.failure_links import decide

    if confirm == reject:
        raise InteropError("give exactly one of --confirm and --reject")
    done = decide(engine(), signature, issue, "confirmed" if confirm else "rejected", rule_version, note)
    console.print(f"{done['issue']} {done['decision']} for signature {done['signature'][:10]}", markup=False)


@app.command("failures")
def failures(
    campaign: str | None = typer.Option(None, help="only this campaign's runs"),
    fmt: Format = format_option(),
    out: Path | None = out_option(),
    rule_version: str = typer.Option(DEFAULT_SIGNATURE_RULE, "--rule-version", help="the signature rule to group by"),
    top: int = typer.Option(30, min=1, help="table: rows to print (json and csv: all)"),
) -> None:
    """Distinct failures: signatures with run counts, models, first/last seen, an example run and its repro
    command. Runs not signed yet under the rule are signed first."""
    from db.queries.failures import signature_counts, upstream
    from db.queries.failures import signatures as listed
    from experiments.signatures import compute_signatures, unsigned_runs

    _check_campaign(campaign)
    rule = _signature_rule(rule_version)
    if unsigned_runs(engine(), rule.version, campaign):
        compute_signatures(engine(), rule, campaign)
    frame = listed(engine(), campaign, rule.version)
    links = upstream(engine(), campaign, rule.version)
    frame = frame.merge(links[["signature", "upstream"]], on="signature", how="left")
    counts = signature_counts(engine(), campaign, rule.version)

    def render(to: Console) -> None:
        if frame.empty:
            to.print("no failed, crashed or mismatching runs")
            return
        summary = new_table(
            "converter",
            "stage",
            "runs",
            "signatures",
            numeric=("runs", "signatures"),
            title=f"distinct failures per converter and stage (rule {rule.version})",
        )
        for row in counts.itertuples(index=False):
            summary.add_row(row.converter, row.stage, f"{row.runs:,}", str(row.signatures))
        to.print(summary)
        shown = frame.head(top)
        more = f", the {top} with most runs" if len(frame) > top else ""
        to.print(f"{len(frame)} signatures{more} (first/last seen: UTC finish times of their runs):", markup=False)
        for row in shown.itertuples(index=False):
            first, last = f"{row.first_seen:%Y-%m-%d}", f"{row.last_seen:%Y-%m-%d}"
            seen = first if first == last else f"{first} … {last}"
            operator = f" {row.operator}" if isinstance(row.operator, str) else ""
            to.print(
                f"{row.signature}  {row.converter} {row.stage}{operator}: {row.runs:,} runs, {row.models:,} models, "
                f"seen {seen}; e.g. run {row.example_run} ({row.repro})",
                markup=False,
                style="bold",
            )
            text = f"{row.error_class}: {row.message}" if row.message else row.error_class
            to.print(f"    {text}", markup=False)
            to.print(f"    upstream: {row.upstream}", markup=False)

    emit(fmt, out, frame, render=render)
