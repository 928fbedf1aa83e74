"""The Label Studio client boundary against a local fault server: every answer's shape is checked, anything
unexpected is one typed error naming the endpoint, writes are never repeated, reads are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from labeling.client import (
    Annotation,
    LabelStudioClient,
    LabelStudioHTTPError,
    LabelStudioResponseError,
    LabelStudioUnreachable,
    Task,
    newest,
)
from tests.support.labelstudio_faults import Fault, FaultProxy

ME = {"id": 1, "email": "admin@lab.org", "username": ""}


def annotation(i: int, updated: str = "2026-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "result": [],
        "was_cancelled": False,
        "completed_by": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated,
        **extra,
    }


def task(i: int, *annotations: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": i,
        "data": {"item_ref": f"a/b#{i}"},
        "updated_at": "2026-01-01T00:00:00Z",
        "annotations": list(annotations),
    }


@pytest.fixture
def fake() -> Iterator[FaultProxy]:
    proxy = FaultProxy()  # no upstream: every request must be answered by a fault
    yield proxy
    proxy.close()


@pytest.fixture
def client(fake: FaultProxy) -> LabelStudioClient:
    return LabelStudioClient(fake.url, "key-123", page_size=2)


def test_whoami_answering_a_list_is_one_typed_error(fake: FaultProxy, client: LabelStudioClient) -> None:
    fake.add(Fault("GET", "/api/current-user/whoami", body=[ME]))
    with pytest.raises(LabelStudioResponseError) as err:
        client.whoami()
    message = str(err.value)
    assert "answered GET /api/current-user/whoami with an unexpected shape" in message and "(got a list)" in message
    assert "\n" not in message
    fake.add(Fault("GET", "/api/current-user/whoami", body={"id": "1", "email": "x"}))  # an id as a string
    with pytest.raises(LabelStudioResponseError, match=r"id: Input should be a valid integer"):
        client.whoami()
    fake.add(Fault("GET", "/api/current-user/whoami", body=ME))
    assert client.whoami().name == "admin@lab.org"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"items": [task(1)], "total": 1}, r"tasks: Field required"),  # well-formed JSON of the wrong shape
        ([task(1)], r"unexpected shape: the answer: Input should be an object \(got a list\)"),
        ({"tasks": {"1": task(1)}, "total": 1}, r"tasks: Input should be a valid array \(got an object\)"),
        ({"tasks": [{**task(1), "annotations": None}], "total": 1}, r"tasks\.0\.annotations"),
        ({"tasks": [task(1, {**annotation(5), "result": "oops"})], "total": 1}, r"annotations\.0\.result"),
        ({"tasks": [task(1, {**annotation(5), "updated_at": None})], "total": 1}, r"updated_at"),
        ({"tasks": [task(1)], "total": 3}, r"1 tasks in all although it announced 3"),  # a listing cut short
    ],
)
def test_a_task_page_of_the_wrong_shape_is_refused(
    fake: FaultProxy, client: LabelStudioClient, body: Any, expected: str
) -> None:
    fake.add(Fault("GET", "/api/tasks/", body=body))
    with pytest.raises(LabelStudioResponseError, match=expected) as err:
        client.tasks(7)
    assert "GET /api/tasks/ (project 7, page 1)" in str(err.value)


def test_tasks_are_read_page_by_page_until_the_announced_total(fake: FaultProxy, client: LabelStudioClient) -> None:
    fake.add(
        Fault("GET", "/api/tasks/", body={"tasks": [task(1), task(2)], "total": 5}),
        Fault("GET", "/api/tasks/", body={"tasks": [task(3), task(4)], "total": 5}),
        Fault("GET", "/api/tasks/", body={"tasks": [task(5)], "total": 5}),
    )
    listing = client.tasks(7, updated_after=datetime(2026, 1, 1, tzinfo=UTC))
    assert [t.id for t in listing.tasks] == [1, 2, 3, 4, 5] and listing.server_time is not None
    assert fake.log[0][1].count("updated_at") == 1  # the incremental filter is sent
    assert len(fake.log) == 3  # no request past the announced total (the server answers 404 there)
    # a 500 on a later page (after the SDK's own retries) is an error naming that page, not a short list
    fake.add(
        Fault("GET", "/api/tasks/", body={"tasks": [task(1), task(2)], "total": 3}),
        Fault("GET", "/api/tasks/", status=500, body={"detail": "boom"}, times=3),
    )
    with pytest.raises(LabelStudioHTTPError, match=r"HTTP 500 to GET /api/tasks/ \(project 7, page 2\): boom"):
        client.tasks(7)


def test_a_write_is_never_repeated_and_its_answer_is_checked(fake: FaultProxy, client: LabelStudioClient) -> None:
    fake.add(Fault("POST", "/api/projects/3/import", status=500, body={"detail": "database is locked"}, times=5))
    with pytest.raises(LabelStudioHTTPError, match=r"HTTP 500 to POST /api/projects/3/import"):
        client.import_tasks(3, [{"a": 1}, {"a": 2}])
    assert [m for m, _, _ in fake.log] == ["POST"]  # one attempt: a retried import could create tasks twice
    fake.clear()
    fake.add(Fault("POST", "/api/projects/3/import", status=201, body={"task_count": 2, "task_ids": [11]}))
    with pytest.raises(LabelStudioResponseError, match=r"2 tasks created and 1 \(1 distinct\) task ids for 2 items"):
        client.import_tasks(3, [{"a": 1}, {"a": 2}])
    fake.add(Fault("POST", "/api/projects/3/import", status=201, body={"task_count": 2, "task_ids": [11, 12]}))
    assert client.import_tasks(3, [{"a": 1}, {"a": 2}]) == [11, 12]


def test_a_read_is_retried_after_a_5xx(fake: FaultProxy, client: LabelStudioClient) -> None:
    fake.add(
        Fault("GET", "/api/users/", status=503, body={"detail": "busy"}),
        Fault("GET", "/api/users/", body=[ME, {"id": 2, "email": "bob@lab.org", "username": "bob"}]),
    )
    assert [u.name for u in client.users()] == ["admin@lab.org", "bob"]
    assert [s for _, _, s in fake.log] == [503, 200]


def test_not_json_a_timeout_and_a_dead_server_are_one_line_each(fake: FaultProxy) -> None:
    client = LabelStudioClient(fake.url, "key-123", timeout=0.5)
    fake.add(Fault("GET", "/api/projects/4/?", raw=b"<html>proxy error</html>"))
    with pytest.raises(LabelStudioResponseError, match=r"GET /api/projects/4 with an answer that is not JSON"):
        client.get_project(4)
    fake.add(Fault("GET", "/api/projects/4/?", body={"id": 4}, delay=2.0))
    with pytest.raises(LabelStudioUnreachable, match=r"did not answer GET /api/projects/4 in time"):
        client.get_project(4)
    url = fake.url.replace("http://", "http://user:s3cret@")
    fake.close()
    dead = LabelStudioClient(url, "key-123")
    with pytest.raises(LabelStudioUnreachable) as err:
        dead.whoami()
    assert "cannot reach Label Studio at http://user:***@127.0.0.1:" in str(err.value)  # masked like every URL
    assert "s3cret" not in str(err.value) and "key-123" not in str(err.value)


def test_one_rule_picks_the_annotation_that_counts() -> None:
    listed = Task.model_validate_json(
        json.dumps(
            task(
                1,
                annotation(4, "2026-01-02T00:00:00Z"),
                annotation(9, "2026-01-01T00:00:00Z"),
                annotation(3, "2026-01-02T00:00:00Z", completed_by={"id": 7, "email": "x"}),
                annotation(12, "2026-01-05T00:00:00Z", was_cancelled=True),
            )
        )
    )
    live = listed.live_annotations
    assert [a.id for a in live] == [4, 9, 3]  # a skipped (cancelled) annotation never counts
    chosen = newest(live)
    assert chosen is not None and chosen.id == 4  # newest update wins; the higher id breaks the tie
    assert live[2].completed_by == 7  # a user object in single reads, an id in lists: one field
    assert newest([]) is None
    assert isinstance(chosen, Annotation)


def test_only_the_client_talks_to_the_sdk() -> None:
    """The boundary holds: no other module of the platform imports label_studio_sdk (benchmarks and tests play
    coders and baselines with it)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    packages = ["cli", "db", "experiments", "explorer", "labeling", "miners", "reporting"]
    users = sorted(
        str(path.relative_to(root))
        for package in packages
        for path in (root / package).rglob("*.py")
        if "label_studio_sdk" in path.read_text(encoding="utf-8")
    )
    assert users == ["labeling/client.py"]
