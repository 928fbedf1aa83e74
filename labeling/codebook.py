"""Codebook files: parse and check the YAML strictly, so every later step can trust codes and conditions.

The YAML is read with a loader that refuses duplicate keys and alias bombs before any object is built; the
document is then checked by one typed model (pydantic) whose limits match the database columns."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from db.errors import InteropError

TOP_KEYS = {"name", "version", "description", "dimensions"}
DIMENSION_KEYS = {
    "key",
    "column",
    "label_column",
    "question",
    "required",
    "required_when",
    "codes",
    "description",
    "multi",
}
CODE_KEYS = {"label", "description", "aliases", "unused"}
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CodebookError(InteropError):
    """A malformed codebook: the message names the file and the offending key."""


@dataclass(frozen=True)
class CodeSpec:
    code: int
    label: str
    description: str | None = None
    aliases: tuple[str, ...] = ()
    unused: bool = False


@dataclass(frozen=True)
class DimensionSpec:
    key: str
    codes: dict[int, CodeSpec]
    question: str | None = None
    column: str | None = None
    label_column: str | None = None
    required: bool = False
    required_when: dict[str, tuple[int, ...]] = field(default_factory=dict)
    multi: bool = False  # several codes per item (themes); Label Studio shows checkboxes

    def lookup(self, text: str) -> CodeSpec | None:
        """The code whose label or alias is `text` (case and spacing ignored)."""
        wanted = _norm(text)
        for code in self.codes.values():
            if _norm(code.label) == wanted or any(_norm(a) == wanted for a in code.aliases):
                return code
        return None

    def applies(self, values: Mapping[str, int | None]) -> bool:
        """Whether the dimension must be answered given the other dimensions' codes."""
        if self.required:
            return True
        if not self.required_when:
            return False
        return all(values.get(k) in codes for k, codes in self.required_when.items())


@dataclass(frozen=True)
class CodebookSpec:
    name: str
    dimensions: tuple[DimensionSpec, ...]
    declared_version: str | None = None
    description: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def dimension(self, key: str) -> DimensionSpec:
        for dim in self.dimensions:
            if dim.key == key:
                return dim
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def to_json(self) -> dict[str, Any]:
        """Normalized, order-stable content: what is stored and hashed."""
        return {
            "name": self.name,
            "version": self.declared_version,
            "description": self.description,
            "dimensions": [
                {
                    "key": d.key,
                    "question": d.question,
                    "column": d.column,
                    "label_column": d.label_column,
                    "required": d.required,
                    "required_when": {k: list(v) for k, v in sorted(d.required_when.items())},
                    # only when set: single-choice codebooks keep the hash they were stored with
                    **({"multi": True} if d.multi else {}),
                    "codes": [
                        {
                            "code": c.code,
                            "label": c.label,
                            "description": c.description,
                            "aliases": list(c.aliases),
                            "unused": c.unused,
                        }
                        for c in sorted(d.codes.values(), key=lambda c: c.code)
                    ],
                }
                for d in self.dimensions
            ],
        }

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodebookSpec:
        """Rebuild from the stored normalized content."""
        dims = tuple(
            DimensionSpec(
                key=d["key"],
                question=d.get("question"),
                column=d.get("column"),
                label_column=d.get("label_column"),
                required=bool(d.get("required")),
                required_when={k: tuple(v) for k, v in (d.get("required_when") or {}).items()},
                multi=bool(d.get("multi")),
                codes={
                    c["code"]: CodeSpec(
                        c["code"],
                        c["label"],
                        c.get("description"),
                        tuple(c.get("aliases") or ()),
                        bool(c.get("unused")),
                    )
                    for c in d["codes"]
                },
            )
            for d in data["dimensions"]
        )
        version = data.get("version")
        return cls(data["name"], dims, None if version is None else str(version), data.get("description"))


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


# --- the typed model: one pydantic model checks every field; limits follow the database columns --------------

NAME_MAX, VERSION_MAX, KEY_MAX, COLUMN_MAX, LABEL_MAX, TEXT_MAX = 100, 50, 64, 200, 200, 10_000
MAX_CODE = 2**31 - 1


def _show(value: Any) -> str:
    """A value for an error message: short, whatever its size."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}… ({len(text):,} characters)"


def _text_value(value: Any, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a non-empty text, got {_show(value)}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"expected a non-empty text, got {_show(value)}")
    if len(text) > limit:
        raise ValueError(f"expected at most {limit:,} characters, got {len(text):,}")
    return text


def _text(limit: int) -> BeforeValidator:
    """A stripped, non-empty text of at most `limit` characters (numbers are read as their text)."""
    return BeforeValidator(lambda v: _text_value(v, limit))


def _code_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"codes must be whole numbers, got {_show(value)}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"codes must be whole numbers, got {_show(value)}") from None
    if number < 0:
        raise ValueError(f"codes must not be negative, got {number}")
    if number > MAX_CODE:
        raise ValueError(f"codes must be at most {MAX_CODE}, got {number}")
    return number


def _version_value(value: Any) -> str | None:
    """`version` is a short scalar (1, 2.1, "2024-05", a date); never a list, a mapping or a long text."""
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, dt.date):
        value = value.isoformat()
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a short scalar such as 1 or '2024-05', got {type(value).__name__} {_show(value)}")
    return _text_value(value, VERSION_MAX)


def _false_if_null(value: Any) -> Any:
    return False if value is None else value


Name = Annotated[str, _text(NAME_MAX)]
Label = Annotated[str, _text(LABEL_MAX)]
Column = Annotated[str, _text(COLUMN_MAX)]
LongText = Annotated[str, _text(TEXT_MAX)]
Flag = Annotated[StrictBool, BeforeValidator(_false_if_null)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeModel(_Strict):
    """One code: `2: Incompatibility` or `2: {label: …, description: …, aliases: […], unused: true}`."""

    label: Label
    description: LongText | None = None
    aliases: list[Label] = Field(default_factory=list)
    unused: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"label": value}
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping with 'label', got {_show(value)}")
        return value

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {_show(value)}")
        return value


class DimensionModel(_Strict):
    """One question coders answer with exactly one code, or with several (`multi: true`)."""

    key: str
    codes: dict[int, CodeModel]
    column: Column | None = None
    label_column: Column | None = None
    question: LongText | None = None
    description: LongText | None = None
    required: Flag = False
    required_when: dict[str, tuple[int, ...]] | None = None
    multi: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {_show(value)}")
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> str:
        key = _text_value(value, KEY_MAX)
        if not KEY_PATTERN.match(key):
            raise ValueError(f"{key!r} must be lower_snake_case (a-z, 0-9, _)")
        return key

    @field_validator("codes", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> dict[int, Any]:
        if not isinstance(value, dict) or not value:
            raise ValueError("expected a non-empty mapping of numeric codes")
        out: dict[int, Any] = {}
        for key, body in value.items():
            try:
                number = _code_number(key)
            except ValueError as exc:
                raise ValueError(f"@{key}: {exc}") from None
            if number in out:
                raise ValueError(f"@{key}: code {number} appears twice")
            out[number] = body
        return out

    @field_validator("required_when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            raise ValueError("expected a mapping like {cause: 2}")
        out: dict[Any, tuple[int, ...]] = {}
        for other, codes in value.items():
            values = codes if isinstance(codes, list) else [codes]
            try:
                out[other] = tuple(_code_number(v) for v in values)
            except ValueError as exc:
                raise ValueError(f"@{other}: {exc}") from None
        return out

    @model_validator(mode="after")
    def _consistent(self) -> DimensionModel:
        if self.required and self.required_when:
            raise ValueError("give either 'required' or 'required_when', not both")
        seen: dict[str, int] = {}
        for number, code in self.codes.items():
            for name in (code.label, *code.aliases):
                if _norm(name) in seen:
                    raise ValueError(
                        f"@codes.{number}: label or alias {name!r} is already used by code {seen[_norm(name)]}"
                    )
                seen[_norm(name)] = number
        return self


class CodebookModel(_Strict):
    """A whole codebook file."""

    name: Name
    version: Annotated[str | None, BeforeValidator(_version_value)] = None
    description: LongText | None = None
    dimensions: list[DimensionModel]

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping with 'name' and 'dimensions' at the top")
        return value

    @field_validator("dimensions", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("expected a non-empty list")
        return value

    @model_validator(mode="after")
    def _conditions(self) -> CodebookModel:
        by_key: dict[str, DimensionModel] = {}
        for i, dim in enumerate(self.dimensions):
            if dim.key in by_key:
                raise ValueError(f"@dimensions[{i}] ({dim.key}).key: dimension {dim.key!r} appears twice")
            by_key[dim.key] = dim
        for dim in self.dimensions:
            where = f"@dimensions ({dim.key}).required_when"
            for other, numbers in (dim.required_when or {}).items():
                if other not in by_key or other == dim.key:
                    raise ValueError(f"{where}.{other}: no other dimension is called {other!r}")
                if by_key[other].multi:
                    raise ValueError(
                        f"{where}.{other}: {other!r} is multi-label (several codes): a condition needs a "
                        "single-choice dimension"
                    )
                for n in numbers:
                    if n not in by_key[other].codes:
                        raise ValueError(f"{where}.{other}: dimension {other!r} has no code {n}")
        deps = {d.key: set(d.required_when or {}) for d in self.dimensions}

        def visit(key: str, path: tuple[str, ...]) -> None:
            for other in deps[key]:
                if other in path:
                    raise ValueError(f"@dimensions ({key}).required_when: circular condition via {other!r}")
                visit(other, (*path, other))

        for key in deps:
            visit(key, (key,))
        return self


# --- errors: the first problem as one line naming the file and the key ------------------------------------------

_ALLOWED = {1: TOP_KEYS, 3: DIMENSION_KEYS, 5: CODE_KEYS}
_TYPE_MESSAGES = {
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "string_type": "expected a text",
    "tuple_type": "expected a list",
}


def _path(loc: tuple[Any, ...], data: Any) -> str:
    """`dimensions[0] (cause).codes.2.label` from pydantic's location, with the dimension's key when it has one."""
    out = ""
    node = data
    for i, part in enumerate(loc):
        if isinstance(part, int) and i > 0 and loc[i - 1] in ("dimensions", "aliases"):
            out += f"[{part}]"
            if loc[i - 1] == "dimensions" and isinstance(node, list) and part < len(node):
                key = node[part].get("key") if isinstance(node[part], dict) else None
                if isinstance(key, str) and KEY_PATTERN.match(key.strip()):
                    out += f" ({key.strip()})"
        else:
            out += f"{'.' if out else ''}{part}"
        if isinstance(node, dict):
            node = next((v for k, v in node.items() if k == part or str(k) == str(part)), None)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return out


def _first(errors: list[Any]) -> Any:
    """The error to report: the first, except that an unknown key explains a missing one beside it (a typo)."""
    first = errors[0]
    if first["type"] == "missing":
        parent = tuple(first["loc"])[:-1]
        typo = next((e for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"])[:-1] == parent), None)
        return typo or first
    return first


def _message(error: dict[str, Any], data: Any, source: str) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        import difflib

        allowed = sorted(_ALLOWED.get(len(loc), set()))
        where = _path(loc[:-1], data)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        prefix = f"{source}: {where + ': ' if where else ''}"
        return f"{prefix}unknown key {str(loc[-1])!r} (allowed: {', '.join(allowed)}{hint})"
    if kind == "missing":
        return f"{source}: {_path(loc, data)}: missing"
    if kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        where = _path(loc, data)
        if message.startswith("@"):  # a validator naming a place below its own
            sub, _, message = message[1:].partition(": ")
            where = f"{where}.{sub}" if where else sub
        return f"{source}: {where + ': ' if where else ''}{message}"
    text = _TYPE_MESSAGES.get(kind, error["msg"])
    where = _path(loc, data)
    return f"{source}: {where + ': ' if where else ''}{text}, got {_show(error.get('input'))}"


# --- entry points --------------------------------------------------------------------------------------------------


def _rejoin_commas(body: dict[Any, Any], at: str, warnings: list[str]) -> dict[Any, Any]:
    """Undo YAML's split of an unquoted comma in a flow mapping: `{description: a (b, c).}` reads as
    `{description: 'a (b', 'c).': None}`; glue such null keys back onto the text before them."""
    fixed: dict[Any, Any] = {}
    last: Any = None
    glued: list[Any] = []
    for key, value in body.items():
        if key not in CODE_KEYS and value is None and last is not None and isinstance(fixed[last], str):
            fixed[last] = f"{fixed[last]}, {key}"
            if last not in glued:
                glued.append(last)
            continue
        fixed[key] = value
        last = key if isinstance(value, str) else None
    # one warning per text, however many commas it had
    warnings.extend(f"{at}.{k}: unquoted comma in a {{…}} mapping; read as {fixed[k]!r} (quote it)" for k in glued)
    return fixed


def _repair(data: Any, source: str, warnings: list[str]) -> Any:
    """The comma repair on every code mapping, before the typed check sees them."""
    if not isinstance(data, dict) or not isinstance(data.get("dimensions"), list):
        return data
    dims = []
    for i, dim in enumerate(data["dimensions"]):
        if isinstance(dim, dict) and isinstance(dim.get("codes"), dict):
            key = dim.get("key")
            name = f"dimensions[{i}] ({key})" if isinstance(key, str) else f"dimensions[{i}]"
            codes = {
                code: _rejoin_commas(body, f"{source}: {name}.codes.{code}", warnings)
                if isinstance(body, dict)
                else body
                for code, body in dim["codes"].items()
            }
            dim = {**dim, "codes": codes}
        dims.append(dim)
    return {**data, "dimensions": dims}


def parse_codebook(data: Any, source: str = "<codebook>") -> CodebookSpec:
    """Check a loaded YAML document; raises CodebookError naming `source` and the key at fault."""
    warnings: list[str] = []
    data = _repair(data, source, warnings)
    try:
        book = CodebookModel.model_validate(data)
    except ValidationError as exc:
        raise CodebookError(" ".join(_message(_first(exc.errors()), data, source).split())) from None
    dims = tuple(
        DimensionSpec(
            key=d.key,
            codes={n: CodeSpec(n, c.label, c.description, tuple(c.aliases), c.unused) for n, c in d.codes.items()},
            question=d.question,
            column=d.column,
            label_column=d.label_column,
            required=d.required,
            required_when=dict(d.required_when or {}),
            multi=d.multi,
        )
        for d in book.dimensions
    )
    return CodebookSpec(
        name=book.name,
        dimensions=dims,
        declared_version=book.version,
        description=book.description,
        warnings=tuple(warnings),
    )


def read_codebook(path: str | Path) -> CodebookSpec:
    """Read and check a codebook file; every problem becomes one CodebookError line."""
    import yaml

    from labeling.strict_yaml import StrictYamlError, load

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CodebookError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise CodebookError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): "
            "a codebook is a YAML text file"
        ) from None
    try:
        data = load(text)
    except RecursionError:
        raise CodebookError(f"{path}: not a usable codebook: nested too deeply") from None
    except StrictYamlError as exc:  # valid YAML, but a duplicate key or an alias bomb
        where = f" line {exc.problem_mark.line + 1}:" if exc.problem_mark is not None else ""
        raise CodebookError(f"{path}:{where} {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected a single document …, but found another document"
            problem = f"{context}, {problem}"
        raise CodebookError(f"{path}:{where} not valid YAML: {problem}") from None
    return parse_codebook(data, str(path))
