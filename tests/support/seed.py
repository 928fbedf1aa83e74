"""A small, deterministic database for app, export and console tests (through the models, like a miner)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import IngestRun, Issue, IssueEvent, IssueSample, IssueSampleMember, Repository, RunStatus

REPOS = ("pytorch/pytorch", "onnx/tensorflow-onnx")
T0 = datetime(2023, 1, 1, tzinfo=UTC)


@dataclass
class Seeded:
    """What was written, so tests can compare figures without re-deriving them."""

    repositories: int = 0
    issues: int = 0
    closed_issues: int = 0
    events: int = 0
    sample_members: int = 0
    ingest_runs: int = 0
    failed_error: str = ""
    per_repo: dict[str, int] = field(default_factory=dict)


def seed_github(engine: Engine, issues_per_repo: int = 20) -> Seeded:
    """Two repositories with issues (every third open), two events each, a sample, and three ingest runs."""
    out = Seeded()
    with Session(engine) as session:
        repos = [Repository(full_name=name) for name in REPOS]
        session.add_all(repos)
        session.flush()
        out.repositories = len(repos)
        picked: list[Issue] = []
        for r, repo in enumerate(repos):
            for n in range(1, issues_per_repo + 1):
                created = T0 + timedelta(days=7 * n + r)
                closed = n % 3 != 0
                issue = Issue(
                    repository_id=repo.id or 0,
                    number=1000 * (r + 1) + n,
                    title=f"{repo.full_name.split('/')[1]} export fails #{n}",
                    body=f"Converting model {n} raises an error.",
                    state="closed" if closed else "open",
                    labels=["module: onnx"] if r == 0 else (["bug"] if n % 2 else ["question"]),
                    author=f"user{n % 5}",
                    created_at=created,
                    updated_at=created + timedelta(days=3),
                    closed_at=created + timedelta(days=3) if closed else None,
                    comment_count=n % 4,
                    html_url=f"https://github.com/{repo.full_name}/issues/{1000 * (r + 1) + n}",
                    hydrated=True,
                    fetched_at=T0 + timedelta(days=400),
                    timeline_fetched_at=T0 + timedelta(days=400),
                )
                session.add(issue)
                session.flush()
                out.issues += 1
                out.closed_issues += closed
                out.per_repo[repo.full_name] = out.per_repo.get(repo.full_name, 0) + 1
                events = [
                    IssueEvent(
                        issue_id=issue.id or 0,
                        event_key=f"{issue.id}-labeled",
                        event="labeled",
                        actor="bot",
                        created_at=created + timedelta(hours=1),
                    )
                ]
                if closed:
                    events.append(
                        IssueEvent(
                            issue_id=issue.id or 0,
                            event_key=f"{issue.id}-closed",
                            event="closed",
                            actor="maintainer",
                            commit_id=f"{n:040x}",
                            created_at=created + timedelta(days=3),
                        )
                    )
                session.add_all(events)
                out.events += len(events)
                if n <= 5:
                    picked.append(issue)
        sample = IssueSample(name="pilot", seed=42, rule={"fixed_only": True, "n": len(picked)})
        session.add(sample)
        session.flush()
        for position, issue in enumerate(picked):
            session.add(IssueSampleMember(sample_id=sample.id or 0, issue_id=issue.id or 0, position=position))
        out.sample_members = len(picked)
        out.failed_error = "ConnectionError: GitHub did not answer after 5 retries"
        session.add_all(
            [
                IngestRun(
                    kind="github-mine",
                    started_at=T0,
                    finished_at=T0 + timedelta(minutes=5),
                    status=RunStatus.ok,
                    counts={"issues_new": out.issues},
                ),
                IngestRun(
                    kind="github-mine",
                    started_at=T0 + timedelta(days=1),
                    finished_at=T0 + timedelta(days=1, minutes=1),
                    status=RunStatus.failed,
                    error=out.failed_error,
                ),
                IngestRun(
                    kind="survey-import",
                    started_at=T0 + timedelta(days=2),
                    finished_at=T0 + timedelta(days=2, seconds=4),
                    status=RunStatus.ok,
                    counts={"responses": 92},
                ),
            ]
        )
        out.ingest_runs = 3
        session.commit()
    return out


@dataclass
class SeededCampaign:
    """A small live campaign whose verdicts at any tolerance are known by construction."""

    name: str = "seeded"
    runs: int = 0
    needed: dict[str, list[float]] = field(default_factory=dict)  # converter -> needed atol (rtol 0) per compared run
    failed_stage: str = "ort_session"
    failed: int = 0
    operators: dict[str, int] = field(default_factory=dict)  # operator -> runs containing it
    first_run_id: int = 0


def seed_experiments(engine: Engine) -> SeededCampaign:
    """Campaign `seeded`: torch.onnx and tf2onnx runs over node counts 5/10 with stored comparison numbers."""
    from db.models.experiments import Campaign, ConversionRun, ModelOperator, ModelUnderTest, RunOutput

    out = SeededCampaign()
    needed = {"torch.onnx": [0.0, 1e-7, 1e-6, 1e-4, 1e-2], "tf2onnx": [1e-8, 1e-3, 1.0]}
    out.needed = needed
    with Session(engine) as session:
        campaign = Campaign(
            name=out.name,
            kind="live",
            spec={"atol": 1e-5, "rtol": 0.0},
            torch_version="2.13.0+cpu",
            onnxruntime_version="1.32.0",
            created_at=T0,
            finished_at=T0 + timedelta(minutes=2),
        )
        session.add(campaign)
        session.flush()
        k = 0
        for converter, values in needed.items():
            for i, need in enumerate([*values, None]):  # None: a run that failed
                k += 1
                ops = ["Conv2d", "ReLU"] if i % 2 == 0 else ["Linear", "Tanh"]
                source = "nnsmith-torch" if converter == "torch.onnx" else "nnsmith-tensorflow"
                model = ModelUnderTest(
                    model_key=f"m{k}",
                    source=source,
                    framework="torch",
                    name=f"model{k}",
                    seed=k,
                    node_count=5 if i % 2 == 0 else 10,
                    operators=ops,
                    campaign_id=campaign.id,
                )
                session.add(model)
                session.flush()
                session.add_all(ModelOperator(model_id=model.id or 0, operator=op) for op in ops)
                status = "failed" if need is None else ("passed" if need <= 1e-5 else "mismatch")
                run = ConversionRun(
                    campaign_id=campaign.id or 0,
                    model_id=model.id or 0,
                    converter=converter,
                    converter_version="1",
                    exporter="torchscript" if converter == "torch.onnx" else "from_function",
                    opset=17,
                    node_count=model.node_count,
                    input_seed=0,
                    n_inputs=1,
                    status=status,
                    stage=out.failed_stage if need is None else None,
                    error_class="onnxruntime.NOT_IMPLEMENTED" if need is None else None,
                    message="Could not find an implementation for Tan(7)" if need is None else None,
                    atol=1e-5,
                    rtol=0.0,
                    finished_at=T0,
                )
                session.add(run)
                session.flush()
                out.first_run_id = out.first_run_id or (run.id or 0)
                out.runs += 1
                out.failed += need is None
                for op in ops:
                    out.operators[op] = out.operators.get(op, 0) + 1
                if need is not None:
                    session.add(
                        RunOutput(
                            run_id=run.id or 0,
                            input_index=0,
                            output_index=0,
                            output_name="y",
                            shape_match=True,
                            dtype_match=True,
                            n_elements=10,
                            max_abs_diff=need,
                            needed_atol={"0.0": need, "0.001": max(need - 1e-3, 0.0)},
                        )
                    )
        session.commit()
    return out


def seed_every_kind(url: str, shared_dir: Path, work: Path) -> None:
    """Every kind of data, as the commands write it: a survey with its definition, issues with events and a
    sample, a coded pilot round with final labels and their history, a campaign's runs with outputs, ingest runs."""
    from typer.testing import CliRunner

    from cli.main import app
    from db.engine import make_engine
    from tests.support.qualtrics_exports import DEFINITION, Variant, write_export

    engine = make_engine(url)
    seed_github(engine)
    seed_experiments(engine)
    engine.dispose()
    export = write_export(work / "export.csv", Variant())
    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    steps = [
        ("survey", "import", str(export), "--survey", "s1", "--definition", str(DEFINITION)),
        ("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml")),
        ("label", "import-sheet", str(study / "PilotStudy.xlsx")),
        ("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R1"),
    ]
    for step in steps:
        result = CliRunner().invoke(app, list(step), env={"INTEROP_DATABASE_URL": url}, catch_exceptions=False)
        assert result.exit_code == 0, (step, result.output)
