"""The Label Studio harness starts a real server that the pinned SDK can use."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.labelstudio


def test_create_project_import_tasks_and_read_them_back(ls_client) -> None:  # type: ignore[no-untyped-def]
    config = (
        '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
    )
    project = ls_client.projects.create(title="harness check", label_config=config)
    ls_client.projects.import_tasks(id=project.id, request=[{"text": f"issue {i}"} for i in range(5)])
    texts = sorted(t.data["text"] for t in ls_client.tasks.list(project=project.id))
    assert texts == [f"issue {i}" for i in range(5)]
    ls_client.projects.delete(id=project.id)
