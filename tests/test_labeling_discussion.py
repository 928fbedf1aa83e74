"""Label Studio tasks carry the issue's discussion (real server): comments in order after the opening post, code
and tracebacks monospace, deleted ones marked; a project pushed before the discussion keeps its layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from db.models.github import IssueComment
from db.models.labeling import LsProject
from db.queries.issues import issue_discussion
from labeling.codebook import read_codebook
from labeling.labelstudio import config_hash, instructions, labeling_config
from tests.support.labeling import make_sample

pytestmark = pytest.mark.labelstudio
T0 = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture
def ls_env(label_studio, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", label_studio.token)
    return label_studio


@pytest.fixture
def codebook_loaded(cli, shared_dir: Path):  # type: ignore[no-untyped-def]
    result = cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert result.exit_code == 0, result.output
    return cli


def comment(issue_id: int, k: int, body: str, *, deleted: bool = False, edited: bool = False) -> IssueComment:
    when = T0 + timedelta(hours=k)
    return IssueComment(
        issue_id=issue_id,
        comment_key=f"node:C{issue_id}_{k}",
        github_id=issue_id * 100 + k,
        author=f"user{k}",
        body=body,
        created_at=when,
        updated_at=when + timedelta(days=1) if edited else when,
        deleted_at=T0 + timedelta(days=9) if deleted else None,
    )


def test_pushed_tasks_carry_the_discussion_in_order(ls_env, codebook_loaded, engine, ls_client, backend: str) -> None:  # type: ignore[no-untyped-def]
    cli = codebook_loaded
    ids = make_sample(engine, "talk", 2, start=7000)
    with Session(engine) as s:
        # stored out of order: the discussion is ordered by when each was posted
        s.add(comment(ids[0], 2, "Fixed by <b>#123</b>, thanks", edited=True))
        s.add(comment(ids[0], 0, "Same here:\n```python\ntorch.onnx.export(m, x, 'm.onnx')\n```"))
        s.add(comment(ids[0], 1, 'Traceback (most recent call last):\n  File "a.py", line 1\nRuntimeError: boom'))
        s.add(comment(ids[0], 3, "spam", deleted=True))
        s.commit()
        assert [c.author for c in issue_discussion(s, ids[0])] == ["user0", "user1", "user2", "user3"]
    pushed = cli("label", "push", "--sample", "talk", "--round", f"talk-{backend}", "--coders", "ann")
    assert pushed.exit_code == 0, pushed.output
    with Session(engine) as s:
        project_id = s.exec(select(LsProject.ls_project_id)).one()
    project = ls_client.projects.get(id=project_id)
    assert '<HyperText name="discussion" value="$discussion" inline="true"/>' in project.label_config
    assert project.label_config.index('value="$body"') < project.label_config.index('value="$discussion"')
    tasks = {t.data["number"]: t.data for t in ls_client.tasks.list(project=project_id)}
    talk = tasks[7000]["discussion"]
    positions = [talk.index(f"#{n} user{n - 1}") for n in (1, 2, 3, 4)]
    assert positions == sorted(positions)  # in order, after the opening post (its own $body field)
    assert "font-family: monospace" in talk and "torch.onnx.export(m, x, &#x27;m.onnx&#x27;)" in talk
    assert "RuntimeError: boom</div>" in talk  # the traceback is one monospace block
    assert "&lt;b&gt;#123&lt;/b&gt;" in talk and "<b>#123</b>" not in talk  # GitHub text never becomes markup
    assert "(edited 2024-02-02)" in talk and "deleted on GitHub" in talk
    assert "No comments mined" in tasks[7001]["discussion"]


def test_a_project_pushed_before_the_discussion_keeps_its_layout(  # type: ignore[no-untyped-def]
    ls_env, codebook_loaded, engine, ls_client, backend: str, shared_dir: Path
) -> None:
    cli = codebook_loaded
    make_sample(engine, "old", 2, start=7100)
    round_name = f"old-{backend}"
    assert cli("label", "push", "--sample", "old", "--round", round_name, "--coders", "bea").exit_code == 0
    spec = read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml")
    legacy = labeling_config(spec, discussion=False)
    with Session(engine) as s:  # as a push before this change left it: the old config, its hash recorded
        row = s.exec(select(LsProject)).one()
        project_id = row.ls_project_id
        ls_client.projects.update(id=project_id, label_config=legacy)
        row.config_hash = config_hash(legacy, instructions(spec))
        s.add(row)
        s.commit()
    make_sample(engine, "old2", 1, repository="onnx/onnx", start=7200)
    assert cli("label", "push", "--sample", "old", "--round", round_name, "--coders", "bea").exit_code == 0
    assert ls_client.projects.get(id=project_id).label_config == legacy  # not switched under its tasks
    # a new round gets the discussion
    assert cli("label", "push", "--sample", "old2", "--round", f"new-{backend}", "--coders", "bea").exit_code == 0
    with Session(engine) as s:
        newest = s.exec(select(LsProject).order_by(LsProject.id.desc())).first()  # type: ignore[union-attr]
    assert "$discussion" in ls_client.projects.get(id=newest.ls_project_id).label_config
