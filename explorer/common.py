"""What every page shares: the configured database, TTL-cached db/queries calls, URL filters, empty states."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

#: Seconds a query result is reused before the database is asked again (the sidebar can clear it).
CACHE_TTL_S = 60
#: Heavy aggregates keyed by a data version are kept this long (a new run changes the version at once).
VERSIONED_TTL_S = 3600

T = TypeVar("T")


def database_url() -> str:
    """The configured database (INTEROP_DATABASE_URL / .env / interop.toml), as the CLI sees it."""
    from db.config import get_settings

    return get_settings().database_url


def masked_url() -> str:
    from db.engine import mask_url

    return mask_url(database_url())


def _encode(value: Any) -> Any:
    """JSON for a query argument; a typed filter (a dataclass) keeps its class so `_decode` can rebuild it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"__filter__": f"{cls.__module__}:{cls.__qualname__}", **dataclasses.asdict(value)}
    return str(value)


def _decode(value: dict[str, Any]) -> Any:
    if "__filter__" not in value:
        return value
    module, name = value.pop("__filter__").split(":")
    return getattr(importlib.import_module(module), name)(**value)


def _call(target: str, url: str, kwargs_json: str) -> Any:
    """Run db.queries function `module:name` on the engine of `url`."""
    from db.engine import get_engine

    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    return fn(get_engine(url), **json.loads(kwargs_json, object_hook=_decode))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=512)
def _cached_call(target: str, url: str, kwargs_json: str) -> Any:
    """_call, cached per URL and arguments for CACHE_TTL_S."""
    return _call(target, url, kwargs_json)


@st.cache_data(ttl=VERSIONED_TTL_S, show_spinner=False, max_entries=256)
def _versioned_call(target: str, url: str, kwargs_json: str, version: str) -> Any:
    """Like _cached_call, kept as long as the data `version` is unchanged (for heavy aggregates)."""
    return _call(target, url, kwargs_json)


def query(fn: Callable[..., T], *, version: Any = None, url: str | None = None, **kwargs: Any) -> T:
    """Call a db/queries function `fn(engine, **kwargs)` through the cache: for CACHE_TTL_S, or, with a data
    `version` (e.g. the number and newest id of conversion runs), until that version changes. A typed filter
    (a frozen dataclass such as IssueFilter) is passed by keyword and rebuilt from its fields. `url` picks another
    connection than the configured database (the SQL page reads only through the reader's)."""
    target = f"{fn.__module__}:{fn.__name__}"
    arguments = json.dumps(kwargs, sort_keys=True, default=_encode)
    if version is not None:
        return _versioned_call(target, url or database_url(), arguments, str(version))  # type: ignore[no-any-return]
    return _cached_call(target, url or database_url(), arguments)  # type: ignore[no-any-return]


# --- filters in the URL --------------------------------------------------------------------------------


def param(name: str, default: str = "") -> str:
    """One filter value from the URL query string."""
    value = st.query_params.get(name)
    return str(value) if value is not None else default


def params(name: str) -> list[str]:
    """A multi-valued filter from the URL (`?label=a&label=b`)."""
    return [v for v in st.query_params.get_all(name) if v != ""]


def set_params(**values: str | Sequence[str] | None) -> None:
    """Write filters back to the URL so the view can be shared; empty values are dropped."""
    for name, value in values.items():
        empty = value is None or value == "" or (not isinstance(value, str) and len(value) == 0)
        if empty:
            if name in st.query_params:
                del st.query_params[name]
        elif isinstance(value, str):
            if st.query_params.get(name) != value:
                st.query_params[name] = value
        elif st.query_params.get_all(name) != list(value):
            st.query_params[name] = list(value)


def select_param(label: str, name: str, options: Sequence[str], all_label: str = "(all)", **kw: Any) -> str:
    """A selectbox bound to URL parameter `name` ("" means no filter)."""
    choices = [all_label, *options]
    current = param(name)
    index = choices.index(current) if current in choices else 0
    picked = st.selectbox(label, choices, index=index, key=f"param_{name}", **kw)
    value = "" if picked == all_label else str(picked)
    set_params(**{name: value})
    return value


def multiselect_param(label: str, name: str, options: Sequence[str], **kw: Any) -> list[str]:
    """A multiselect bound to a multi-valued URL parameter."""
    current = [v for v in params(name) if v in options]
    picked = st.multiselect(label, list(options), default=current, key=f"param_{name}", **kw)
    set_params(**{name: picked})
    return list(picked)


# --- empty states and small pieces ---------------------------------------------------------------------


def empty_state(what: str, *commands: str) -> None:
    """Say what is missing and which command fills it."""
    lines = "\n".join(f"    {c}" for c in commands)
    st.info(f"No {what} in this database yet. Fill it with:\n\n{lines}", icon=":material/info:")


def schema_missing(exc: Exception) -> bool:
    """True when the database has no tables yet (the app opened before `interop db upgrade`)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


# --- tables as shown ------------------------------------------------------------------------------------


#: How a page shows a missing value (never "None", "NaT" or "nan").
MISSING = "—"


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def for_display(frame: Any, *, dates: Sequence[str] = ()) -> Any:
    """A copy of a DataFrame to show: timestamps as UTC text (`dates`: day only), booleans as yes/no, and every
    missing value as MISSING; complete numeric columns stay numbers (right-aligned, sortable)."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            text = values.dt.strftime("%Y-%m-%d" if column in dates else "%Y-%m-%d %H:%M")
            out[column] = text.astype(object).where(values.notna(), MISSING)
            continue
        present = [v for v in values if not _missing(v)]
        if pd.api.types.is_bool_dtype(values.dtype) or (present and all(isinstance(v, bool) for v in present)):
            out[column] = values.astype(object).map(lambda v: MISSING if _missing(v) else ("yes" if v else "no"))
        elif len(present) == len(values):
            continue
        elif pd.api.types.is_numeric_dtype(values.dtype):
            out[column] = values.astype(object).map(lambda v: MISSING if _missing(v) else f"{v:g}")
        else:
            out[column] = values.astype(object).map(lambda v: MISSING if _missing(v) else v)
    return out
