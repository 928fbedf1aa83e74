"""The project's one boundary to Label Studio: every label-studio-sdk call, its timeout and retry policy, and a
shape check of every answer the project reads. Whatever goes wrong is one `LabelStudioError` naming the endpoint.

The SDK builds its objects without validating them (`construct_type`), so a well-formed answer of the wrong shape
would pass it silently; the client therefore validates the JSON the server actually sent (read from the httpx
response the SDK call produced) against the small pydantic models below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator

from db.masking import mask_text, mask_url
from labeling.store import LabelingError

if TYPE_CHECKING:
    import httpx
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.request_options import RequestOptions
    from label_studio_sdk.types.import_api_request import ImportApiRequest
    from label_studio_sdk.types.prediction_request import PredictionRequest

TIMEOUT_S = 60.0  # one request; an import of 1,000 tasks takes a few seconds
IMPORT_TIMEOUT_S = 300.0
PAGE = 1000  # tasks per page when listing
READ_RETRIES = 2  # the SDK's own retries on 5xx/429/connection errors, for reads only (a write is never repeated)

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------------------------


class LabelStudioError(LabelingError):
    """Label Studio failed or answered something unexpected: one line naming the endpoint, never the API key."""

    def __init__(self, message: str, endpoint: str = "") -> None:
        super().__init__(mask_text(message))  # server bodies may echo URLs with credentials
        self.endpoint = endpoint

    def with_context(self, context: str) -> LabelStudioError:
        """The same error with what the caller did about it (e.g. `nothing was stored`)."""
        return type(self)(f"{self}; {context}", self.endpoint)


class LabelStudioUnreachable(LabelStudioError):
    """No answer: connection refused, DNS, timeout."""


class LabelStudioAuthError(LabelStudioError):
    """The API key was rejected."""


class LabelStudioHTTPError(LabelStudioError):
    """An HTTP error status (4xx other than auth, 5xx)."""


class LabelStudioResponseError(LabelStudioError):
    """A 2xx answer that is not the JSON shape the project reads (wrong type, missing field, inconsistent)."""


# --- the shapes the project reads ---------------------------------------------------------------------------------


class _Shape(BaseModel):
    """Strict JSON types (an id is a number, not a string), unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class User(_Shape):
    id: int
    email: str | None = None
    username: str | None = None

    @property
    def name(self) -> str:
        return self.username or self.email or f"user {self.id}"


class Project(_Shape):
    id: int
    title: str | None = None
    task_number: int | None = None
    total_annotations_number: int | None = None


class ProjectPage(_Shape):
    count: int
    results: list[Project]


class Annotation(_Shape):
    """One annotation of a task; every field the pull reads is required (an absent one is not `no value`)."""

    id: int
    result: list[Any]
    was_cancelled: bool
    completed_by: int | None
    created_at: datetime
    updated_at: datetime

    @field_validator("completed_by", mode="before")
    @classmethod
    def _user_id(cls, value: Any) -> Any:
        """`completed_by` is an id in task lists but a user object in single-task reads."""
        return value["id"] if isinstance(value, dict) and "id" in value else value


class TaskPrediction(_Shape):
    """A model's prediction on a task: never an annotation, so never a coding (the pull reads `annotations` only)."""

    id: int
    result: list[Any]
    model_version: str | None = None
    score: float | None = None


class Task(_Shape):
    id: int
    data: dict[str, Any]
    updated_at: datetime
    annotations: list[Annotation]
    predictions: list[TaskPrediction] = []

    @property
    def live_annotations(self) -> list[Annotation]:
        """The annotations that count: not cancelled (skipped)."""
        return [a for a in self.annotations if not a.was_cancelled]


class TaskPage(_Shape):
    tasks: list[Task]
    total: int


class ImportAnswer(_Shape):
    task_count: int
    task_ids: list[int]


class PredictionImportAnswer(_Shape):
    created: int


def newest(annotations: Iterable[Annotation]) -> Annotation | None:
    """The one rule for which of several annotations counts: the last updated; the higher id breaks a tie."""
    return max(annotations, key=lambda a: (a.updated_at, a.id), default=None)


@dataclass
class TaskListing:
    """The tasks of one project read in full, with the server's clock at the first page (the pull's watermark)."""

    tasks: list[Task]
    server_time: datetime | None


JSON_TYPES = {"dict": "an object", "list": "a list", "str": "a string", "NoneType": "null"}


def _summary(exc: ValidationError) -> str:
    """The first validation problem as `an unexpected shape: where: what (got TYPE)`, without the value itself."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "the answer"
    got = ""
    if first["type"] != "missing":  # the input of a missing field is its parent: not worth naming
        name = type(first.get("input")).__name__
        got = f" (got {JSON_TYPES.get(name, name)})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"an unexpected shape: {where}: {first['msg']}{got}{more}"


# --- the client ---------------------------------------------------------------------------------------------------


class LabelStudioClient:
    """Typed, checked calls to one Label Studio server, and a count of the HTTP requests made."""

    def __init__(self, url: str, api_key: str, *, timeout: float = TIMEOUT_S, page_size: int | None = None) -> None:
        import httpx
        from label_studio_sdk import LabelStudio

        self.url = mask_url(url).rstrip("/")
        self.timeout = timeout
        self.page_size = page_size or PAGE
        self.request_count = 0
        self.me: User | None = None
        self._last: httpx.Response | None = None
        http = httpx.Client(
            timeout=timeout, event_hooks={"request": [self._on_request], "response": [self._on_response]}
        )
        self._sdk: LabelStudio = LabelStudio(
            base_url=url.rstrip("/"), api_key=api_key, httpx_client=http, timeout=timeout
        )

    def _on_request(self, _request: httpx.Request) -> None:
        self.request_count += 1

    def _on_response(self, response: httpx.Response) -> None:
        self._last = response

    # -- one call ------------------------------------------------------------------------------------------------

    def _call(
        self,
        endpoint: str,
        call: Callable[[RequestOptions], object],
        shape: Any,
        *,
        write: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Run one SDK call and validate the JSON it received against `shape` (None: no body expected)."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError
        from label_studio_sdk.core.parse_error import ParsingError

        options: RequestOptions = {
            "timeout": timeout or self.timeout,
            "max_retries": 0 if write else READ_RETRIES,
        }
        self._last = None
        unread: str | None = None  # the SDK choked on the answer: say why in our own terms if we can
        try:
            call(options)
        except ApiError as exc:
            if 200 <= (exc.status_code or 0) < 300:  # the SDK could not decode a 2xx body
                raise self._bad(endpoint, "an answer that is not JSON") from None
            raise self._http_error(endpoint, exc) from None
        except ParsingError:
            unread = "an answer the SDK could not parse"
        except httpx.TimeoutException as exc:
            raise LabelStudioUnreachable(
                f"Label Studio at {self.url} did not answer {endpoint} in time ({type(exc).__name__})", endpoint
            ) from None
        except httpx.HTTPError as exc:
            raise LabelStudioUnreachable(
                f"cannot reach Label Studio at {self.url} ({endpoint}: {type(exc).__name__}: {str(exc)[:200]})",
                endpoint,
            ) from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            if self._last is None:
                raise  # no answer was read: a bug in the call itself, not the server's doing
            unread = f"an answer the SDK could not read ({type(exc).__name__})"
        response = self._last
        if response is None:
            raise self._bad(endpoint, "no answer")
        if not 200 <= response.status_code < 300:
            raise LabelStudioHTTPError(
                f"Label Studio at {self.url} answered HTTP {response.status_code} to {endpoint}", endpoint
            )
        value = None
        if shape is not None:
            adapter = shape if isinstance(shape, TypeAdapter) else TypeAdapter(shape)
            try:
                value = adapter.validate_json(response.content)
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    raise self._bad(endpoint, "an answer that is not JSON") from None
                raise self._bad(endpoint, _summary(exc)) from None
        if unread is not None:
            raise self._bad(endpoint, unread)
        return value

    def _bad(self, endpoint: str, what: str) -> LabelStudioResponseError:
        return LabelStudioResponseError(f"Label Studio at {self.url} answered {endpoint} with {what}", endpoint)

    def _http_error(self, endpoint: str, exc: Any) -> LabelStudioError:
        status = exc.status_code
        if status in (401, 403):
            return LabelStudioAuthError(
                f"Label Studio at {self.url} rejected the API key (HTTP {status}) on {endpoint}: check "
                "INTEROP_LABEL_STUDIO_API_KEY (legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)",
                endpoint,
            )
        body = exc.body
        if isinstance(body, dict):
            body = body.get("detail") or body.get("validation_errors") or body
        detail = re.sub(r"\s+", " ", str(body if isinstance(body, str | dict | list) else ""))[:300]
        return LabelStudioHTTPError(
            f"Label Studio at {self.url} answered HTTP {status} to {endpoint}" + (f": {detail}" if detail else ""),
            endpoint,
        )

    def _server_time(self) -> datetime | None:
        """The `Date` of the last answer: the server's clock, not ours."""
        value = self._last.headers.get("date") if self._last is not None else None
        try:
            return parsedate_to_datetime(value).astimezone(UTC) if value else None
        except (TypeError, ValueError):
            return None

    # -- users ---------------------------------------------------------------------------------------------------

    def whoami(self) -> User:
        """Who the API key belongs to (also the check that the server answers and the key works)."""
        self.me = self._call("GET /api/current-user/whoami", lambda o: self._sdk.users.whoami(request_options=o), User)
        return self.me

    def users(self) -> list[User]:
        return self._call("GET /api/users/", lambda o: self._sdk.users.list(request_options=o), list[User])

    def create_user(self, username: str, email: str) -> User:
        return self._call(
            "POST /api/users/",
            lambda o: self._sdk.users.create(username=username, email=email, first_name=username, request_options=o),
            User,
            write=True,
        )

    # -- projects ------------------------------------------------------------------------------------------------

    def projects_titled(self, fragment: str) -> list[Project]:
        """Every project whose title contains `fragment` (the server filters; the match is re-checked here)."""
        out: list[Project] = []
        page = 1
        while True:

            def listing(o: RequestOptions, p: int = page) -> object:
                return self._sdk.projects.list(title=fragment, page=p, page_size=100, request_options=o)

            answer: ProjectPage = self._call(
                f"GET /api/projects/ (title {fragment!r}, page {page})", listing, ProjectPage
            )
            out += answer.results
            if not answer.results or len(out) >= answer.count:
                break
            page += 1
        return [p for p in out if fragment in (p.title or "")]

    def get_project(self, project_id: int) -> Project:
        return self._call(
            f"GET /api/projects/{project_id}",
            lambda o: self._sdk.projects.get(id=project_id, request_options=o),
            Project,
        )

    def create_project(self, title: str, settings: dict[str, Any]) -> Project:
        return self._call(
            "POST /api/projects/",
            lambda o: self._sdk.projects.create(title=title, **settings, request_options=o),
            Project,
            write=True,
        )

    def update_project(self, project_id: int, settings: dict[str, Any]) -> Project:
        return self._call(
            f"PATCH /api/projects/{project_id}",
            lambda o: self._sdk.projects.update(id=project_id, **settings, request_options=o),
            Project,
            write=True,
        )

    def delete_project(self, project_id: int) -> None:
        self._call(
            f"DELETE /api/projects/{project_id}",
            lambda o: self._sdk.projects.delete(id=project_id, request_options=o),
            None,
            write=True,
        )

    # -- tasks ---------------------------------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create tasks in one request; their ids in the order given (an answer with other counts is refused)."""
        endpoint = f"POST /api/projects/{project_id}/import"
        answer: ImportAnswer = self._call(
            endpoint,
            lambda o: self._sdk.projects.import_tasks(
                id=project_id,
                # The SDK types the body as its pydantic model but sends JSON: our tasks are that JSON already.
                request=cast("list[ImportApiRequest]", list(tasks)),
                return_task_ids=True,
                request_options=o,
            ),
            ImportAnswer,
            write=True,
            timeout=max(IMPORT_TIMEOUT_S, self.timeout),
        )
        ids = answer.task_ids
        if len(ids) != len(tasks) or answer.task_count != len(tasks) or len(set(ids)) != len(ids):
            raise self._bad(
                endpoint,
                f"{answer.task_count} tasks created and {len(ids)} ({len(set(ids))} distinct) task ids for "
                f"{len(tasks)} items sent",
            )
        return ids

    def import_predictions(self, project_id: int, predictions: Sequence[dict[str, Any]]) -> int:
        """Attach predictions (`task`, `result`, `score`, `model_version`) to tasks of a project in one request;
        an answer that created another number of them is refused."""
        endpoint = f"POST /api/projects/{project_id}/import/predictions"
        answer: PredictionImportAnswer = self._call(
            endpoint,
            lambda o: self._sdk.projects.import_predictions(
                id=project_id,
                # typed as the SDK's pydantic model, sent as JSON: our dicts are that JSON already
                request=cast("list[PredictionRequest]", list(predictions)),
                request_options=o,
            ),
            PredictionImportAnswer,
            write=True,
            timeout=max(IMPORT_TIMEOUT_S, self.timeout),
        )
        if answer.created != len(predictions):
            raise self._bad(endpoint, f"{answer.created} predictions created for {len(predictions)} sent")
        return answer.created

    def tasks(self, project_id: int, updated_after: datetime | None = None) -> TaskListing:
        """Every task of a project with its annotations (or those updated after a time), page by page until the
        announced total is read; an answer that ends early or contradicts itself is an error, never a short list."""
        query = None
        if updated_after is not None:
            stamp = updated_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            condition = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": stamp}
            query = json.dumps({"filters": {"conjunction": "and", "items": [condition]}})
        found: dict[int, Task] = {}
        listed = 0
        server_time: datetime | None = None
        page = 1
        while True:
            endpoint = f"GET /api/tasks/ (project {project_id}, page {page})"

            def listing(o: RequestOptions, p: int = page) -> object:
                return self._sdk.tasks.list(
                    project=project_id, fields="all", page=p, page_size=self.page_size, query=query, request_options=o
                )

            answer: TaskPage = self._call(endpoint, listing, TaskPage)
            if page == 1:
                server_time = self._server_time()
            listed += len(answer.tasks)
            for task in answer.tasks:  # a task moved to a later page by a concurrent change shows twice: keep the last
                found[task.id] = task
            if len(answer.tasks) > self.page_size:
                raise self._bad(endpoint, f"{len(answer.tasks)} tasks on a page of {self.page_size}")
            if listed >= answer.total:
                break
            if len(answer.tasks) < self.page_size:
                raise self._bad(endpoint, f"{listed} tasks in all although it announced {answer.total}")
            page += 1
        return TaskListing(list(found.values()), server_time)


def connect(url: str | None = None, api_key: str | None = None) -> LabelStudioClient:
    """A checked client (who am I?) from arguments or the settings; one clear error when it fails."""
    from db.config import get_settings

    settings = get_settings()
    url = url or settings.label_studio_url
    if api_key is None:
        secret = settings.label_studio_api_key
        api_key = secret.get_secret_value() if secret else None
    if not api_key:
        raise LabelingError(
            "no Label Studio API key: set INTEROP_LABEL_STUDIO_API_KEY (or label_studio_api_key in interop.toml)"
        )
    client = LabelStudioClient(url, api_key)
    client.whoami()
    return client
