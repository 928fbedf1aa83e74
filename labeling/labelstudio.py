"""Label Studio side: the labeling config generated from a codebook, the connection, and result checks."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from labeling.codebook import CodebookSpec, DimensionSpec
from labeling.store import LabelingError

NOTE = "note"
OBJECT = "body"
TIMEOUT_S = 60.0


def choice_value(code: int, label: str) -> str:
    """What a coder sees and what LS stores: `2 Incompatibility` (commas would split `whenChoiceValue`)."""
    return f"{code} {label}".replace(",", ";")


def _dimension_xml(dim: DimensionSpec, spec: CodebookSpec) -> str:
    attrs = [f"name={quoteattr(dim.key)}", f"toName={quoteattr(OBJECT)}", 'choice="single-radio"', 'showInline="false"']
    visible = ""
    if dim.required:
        attrs += ['required="true"', f"requiredMessage={quoteattr(f'{dim.key} is required')}"]
    if dim.required_when:
        # LS conditions on one tag: the first condition drives visibility (question and choices); pull checks all
        other, codes = next(iter(dim.required_when.items()))
        values = ",".join(choice_value(c, spec.dimension(other).codes[c].label) for c in codes)
        visible = f' visibleWhen="choice-selected" whenTagName={quoteattr(other)} whenChoiceValue={quoteattr(values)}'
    question = dim.question or dim.key.replace("_", " ")
    lines = [
        f'  <View style="margin-top: 1em"{visible}>',
        f'    <Header value={quoteattr(f"{dim.key}: {question}")} size="5"/>',
        f"    <Choices {' '.join(attrs)}{visible}>",
    ]
    for code in sorted(dim.codes.values(), key=lambda c: c.code):
        hint = code.description or code.label
        if code.unused:
            hint += " (not used in the original study)"
        lines.append(f"      <Choice value={quoteattr(choice_value(code.code, code.label))} hint={quoteattr(hint)}/>")
    lines += ["    </Choices>", "  </View>"]
    return "\n".join(lines)


def labeling_config(spec: CodebookSpec) -> str:
    """One single-choice control per dimension (descriptions as hints), conditional ones shown only when they
    apply, a free-text note, and the issue's title, labels, link and body."""
    parts = [
        "<View>",
        '  <Header value="$title"/>',
        '  <View style="display: flex; gap: 1em">',
        '    <Text name="labels" value="$labels"/>',
        '    <HyperText name="link" value="$link" inline="true"/>',
        "  </View>",
        '  <View style="max-height: 420px; overflow-y: auto; border: 1px solid #ddd; padding: 0.5em">',
        f'    <Text name="{OBJECT}" value="$body"/>',
        "  </View>",
    ]
    parts += [_dimension_xml(dim, spec) for dim in spec.dimensions]
    parts += [
        '  <Header value="Note (optional): why this coding, doubts, codebook gaps" size="5"/>',
        f'  <TextArea name="{NOTE}" toName="{OBJECT}" rows="3" maxSubmissions="1" editable="true"/>',
        "</View>",
    ]
    return "\n".join(parts)


def instructions(spec: CodebookSpec) -> str:
    """The codebook as HTML instructions shown to coders in Label Studio."""
    out = [f"<h3>Codebook {html.escape(spec.name)}</h3>"]
    for dim in spec.dimensions:
        cond = ""
        if dim.required_when:
            cond = (
                " (only when "
                + "; ".join(
                    f"{k} is " + " or ".join(spec.dimension(k).codes[c].label for c in v)
                    for k, v in dim.required_when.items()
                )
                + ")"
            )
        out.append(f"<h4>{html.escape(dim.key)}: {html.escape(dim.question or '')}{html.escape(cond)}</h4><ul>")
        for c in sorted(dim.codes.values(), key=lambda c: c.code):
            out.append(f"<li><b>{c.code} {html.escape(c.label)}</b>: {html.escape(c.description or '')}</li>")
        out.append("</ul>")
    return "\n".join(out)


def config_hash(config: str, instruction: str) -> str:
    return hashlib.sha256((config + "\0" + instruction).encode()).hexdigest()


# --- results → codes --------------------------------------------------------------------------------------------


@dataclass
class CheckedResult:
    """A Label Studio result checked against the codebook: codes per dimension, the note, and problems."""

    codes: dict[str, int] = field(default_factory=dict)
    note: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def check_result(result: list[dict[str, Any]] | None, spec: CodebookSpec) -> CheckedResult:
    """The server accepts anything; here unknown controls, unknown choices, several choices in a single-choice
    control and missing or misplaced (conditional) dimensions make the annotation invalid."""
    out = CheckedResult()
    seen: set[str] = set()
    values_by_dim = {d.key: {choice_value(c.code, c.label): c.code for c in d.codes.values()} for d in spec.dimensions}
    for entry in result or []:
        if not isinstance(entry, dict):
            out.problems.append(f"result entry is not an object: {entry!r}"[:200])
            continue
        name = str(entry.get("from_name"))
        value = entry.get("value") or {}
        if name == NOTE:
            texts = value.get("text") or []
            text = "\n".join(str(t) for t in (texts if isinstance(texts, list) else [texts])).strip()
            out.note = text or None
            continue
        if name not in values_by_dim:
            out.problems.append(f"unknown control {name!r}")
            continue
        if name in seen:
            out.problems.append(f"{name!r} answered twice")
            continue
        seen.add(name)
        choices = value.get("choices")
        if entry.get("type") not in (None, "choices") or not isinstance(choices, list):
            out.problems.append(f"{name!r} is not a choice result (type {entry.get('type')!r})")
            continue
        if len(choices) != 1:
            out.problems.append(f"{name!r} is single-choice but has {len(choices)} choices {choices!r}"[:200])
            continue
        code = values_by_dim[name].get(str(choices[0]))
        if code is None:
            out.problems.append(f"unknown choice {choices[0]!r} for {name!r}"[:200])
            continue
        out.codes[name] = code
    if out.problems:
        return out
    for dim in spec.dimensions:
        applies = dim.applies(out.codes)
        if applies and dim.key not in out.codes:
            out.problems.append(f"{dim.key!r} is required here but not answered")
        elif dim.required_when and not applies and dim.key in out.codes:
            out.problems.append(f"{dim.key!r} answered although its condition does not hold")
    return out


# --- connection ---------------------------------------------------------------------------------------------------


@dataclass
class Connection:
    """An SDK client plus a count of the HTTP requests it made (benchmarks and reports)."""

    client: Any
    url: str
    requests: list[int] = field(default_factory=lambda: [0])
    me: Any = None
    server_dates: list[datetime] = field(default_factory=list)  # `Date` of each response (server clock)

    @property
    def request_count(self) -> int:
        return self.requests[0]


def _counter(box: list[int]) -> Callable[[Any], None]:
    def hook(_request: Any) -> None:
        box[0] += 1

    return hook


def _date_recorder(dates: list[datetime]) -> Callable[[Any], None]:
    def hook(response: Any) -> None:
        value = response.headers.get("date")
        if value:
            with suppress(TypeError, ValueError):
                dates.append(parsedate_to_datetime(value).astimezone(UTC))

    return hook


def describe_error(exc: BaseException, url: str) -> str:
    """One line for any failure talking to Label Studio; never contains the API key or URL credentials."""
    from db.masking import mask_text, mask_url

    return mask_text(_describe_error(exc, mask_url(url)))


def _describe_error(exc: BaseException, url: str) -> str:
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, ApiError):
        if exc.status_code in (401, 403):
            return (
                f"Label Studio at {url} rejected the API key (HTTP {exc.status_code}): check "
                "INTEROP_LABEL_STUDIO_API_KEY (legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)"
            )
        body = exc.body if isinstance(exc.body, str | dict | list) else ""
        detail = re.sub(r"\s+", " ", str(body))[:300]
        return f"Label Studio at {url} answered HTTP {exc.status_code}: {detail}"
    if isinstance(exc, httpx.TimeoutException):
        return f"Label Studio at {url} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach Label Studio at {url} ({type(exc).__name__}: {str(exc)[:200]})"
    return f"Label Studio at {url}: {type(exc).__name__}: {str(exc)[:200]}"


@contextmanager
def ls_errors(url: str) -> Iterator[None]:
    """Turn SDK / HTTP failures into LabelingError (so the caller's transaction rolls back)."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except (ApiError, httpx.HTTPError) as exc:
        raise LabelingError(describe_error(exc, url)) from None


def connect(url: str | None = None, api_key: str | None = None) -> Connection:
    """A checked connection (who am I?) from arguments or the settings; one clear error when it fails."""
    import httpx
    from label_studio_sdk import LabelStudio

    from db.config import get_settings
    from db.masking import mask_url

    settings = get_settings()
    url = (url or settings.label_studio_url).rstrip("/")
    if api_key is None:
        secret = settings.label_studio_api_key
        api_key = secret.get_secret_value() if secret else None
    if not api_key:
        raise LabelingError(
            "no Label Studio API key: set INTEROP_LABEL_STUDIO_API_KEY (or label_studio_api_key in interop.toml)"
        )
    box: list[int] = [0]
    dates: list[datetime] = []
    hooks = {"request": [_counter(box)], "response": [_date_recorder(dates)]}
    http = httpx.Client(timeout=TIMEOUT_S, event_hooks=hooks)
    shown = mask_url(url)  # what messages and reports say: the URL without its credentials
    conn = Connection(LabelStudio(base_url=url, api_key=api_key, httpx_client=http), shown, box, server_dates=dates)
    with ls_errors(shown):
        conn.me = conn.client.users.whoami()
    return conn
