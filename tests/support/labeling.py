"""Test data for labeling (issues and a named sample written straight through the db models), Label Studio
results as a coder would submit them, and reading the CLI's tables back."""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models.github import Issue, IssueSample, IssueSampleMember, Repository
from labeling.labelstudio import choice_value


def make_sample(
    engine: Engine, name: str, n: int, repository: str = "pytorch/pytorch", seed: int = 1, start: int = 1000
) -> list[int]:
    """A sample of `n` hydrated issues (numbers start, start+1, …); returns their issue ids in sample order."""
    with Session(engine) as s:
        repo = Repository(full_name=repository)
        s.add(repo)
        s.flush()
        sample = IssueSample(name=name, seed=seed, rule={"test": True, "n": n})
        s.add(sample)
        s.flush()
        ids = []
        for i in range(n):
            issue = Issue(
                repository_id=repo.id,
                number=start + i,
                title=f"export fails #{i}",
                hydrated=True,
                body=f"Traceback {i}\nRuntimeError: ONNX export failed",
                labels=["module: onnx"],
                html_url=f"https://github.com/{repository}/issues/{start + i}",
            )
            s.add(issue)
            s.flush()
            s.add(IssueSampleMember(sample_id=sample.id, issue_id=issue.id, position=i))
            ids.append(issue.id)
        s.commit()
        return ids


def table_rows(output: str) -> list[list[str]]:
    """Header and rows of the one rich table in `output` (printed wide enough not to wrap), times as <time>;
    fails where a raw DataFrame column name shows instead."""
    assert not re.search(r"\w_(version|at|hash)\b", output), output
    lines = [line for line in output.splitlines() if line[:1] in ("┃", "│")]
    rows = [[cell.strip() for cell in re.split("[┃│]", line)[1:-1]] for line in lines]
    assert all(row[0] for row in rows), output  # no wrapped continuation lines
    return [["<time>" if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", c) else c for c in row] for row in rows]


def choice(dim: str, code: int, label: str) -> dict[str, object]:
    return {"from_name": dim, "to_name": "body", "type": "choices", "value": {"choices": [choice_value(code, label)]}}


def result_for(symptom: tuple[int, str], cause: tuple[int, str]) -> list[dict[str, object]]:
    res = [choice("symptom", *symptom), choice("cause", *cause), choice("component", 1, "Node Conversion")]
    if cause[0] == 2:
        res.append(choice("incompatibility_type", 2, "External"))
    res.append({"from_name": "note", "to_name": "body", "type": "textarea", "value": {"text": ["checked"]}})
    return res
