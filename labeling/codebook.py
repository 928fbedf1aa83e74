"""Codebook files: parse and check the YAML strictly, so every later step can trust codes and conditions."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOP_KEYS = {"name", "version", "description", "dimensions"}
DIMENSION_KEYS = {"key", "column", "label_column", "question", "required", "required_when", "codes", "description"}
CODE_KEYS = {"label", "description", "aliases", "unused"}
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CodebookError(ValueError):
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

    def lookup(self, text: str) -> CodeSpec | None:
        """The code whose label or alias is `text` (case and spacing ignored)."""
        wanted = _norm(text)
        for code in self.codes.values():
            if _norm(code.label) == wanted or any(_norm(a) == wanted for a in code.aliases):
                return code
        return None

    def applies(self, values: dict[str, int | None]) -> bool:
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


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise CodebookError(f"{where}: missing")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
        raise CodebookError(f"{where}: expected a non-empty text, got {value!r}")
    return str(value).strip()


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CodebookError(f"{where}: expected true or false, got {value!r}")
    return value


def _code_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CodebookError(f"{where}: codes must be whole numbers, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise CodebookError(f"{where}: codes must be whole numbers, got {value!r}") from None
    if number < 0:
        raise CodebookError(f"{where}: codes must not be negative, got {number}")
    return number


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise CodebookError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _rejoin_commas(body: dict[str, Any], at: str, warnings: list[str]) -> dict[str, Any]:
    """Undo YAML's split of an unquoted comma in a flow mapping: `{description: a (b, c).}` reads as
    `{description: 'a (b', 'c).': None}`; glue such null keys back onto the text before them."""
    fixed: dict[str, Any] = {}
    last: str | None = None
    glued: list[str] = []
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


def _parse_codes(raw: Any, where: str, warnings: list[str]) -> dict[int, CodeSpec]:
    if not isinstance(raw, dict) or not raw:
        raise CodebookError(f"{where}: expected a non-empty mapping of numeric codes")
    codes: dict[int, CodeSpec] = {}
    seen: dict[str, int] = {}
    for key, body in raw.items():
        at = f"{where}.{key}"
        number = _code_number(key, at)
        if number in codes:
            raise CodebookError(f"{at}: code {number} appears twice")
        if isinstance(body, str):
            body = {"label": body}
        if not isinstance(body, dict):
            raise CodebookError(f"{at}: expected a mapping with 'label', got {body!r}")
        body = _rejoin_commas(body, at, warnings)
        _unknown(body, CODE_KEYS, at)
        label = _text(body.get("label"), f"{at}.label", required=True) or ""
        aliases_raw = body.get("aliases") or []
        if not isinstance(aliases_raw, list):
            raise CodebookError(f"{at}.aliases: expected a list, got {aliases_raw!r}")
        aliases = tuple(_text(a, f"{at}.aliases", required=True) or "" for a in aliases_raw)
        for name in (label, *aliases):
            if _norm(name) in seen:
                raise CodebookError(f"{at}: label or alias {name!r} is already used by code {seen[_norm(name)]}")
            seen[_norm(name)] = number
        codes[number] = CodeSpec(
            number,
            label,
            _text(body.get("description"), f"{at}.description"),
            aliases,
            _bool(body.get("unused"), f"{at}.unused"),
        )
    return codes


def parse_codebook(data: Any, source: str = "<codebook>") -> CodebookSpec:
    """Check a loaded YAML document; raises CodebookError naming `source` and the key at fault."""
    if not isinstance(data, dict):
        raise CodebookError(f"{source}: expected a mapping with 'name' and 'dimensions' at the top")
    _unknown(data, TOP_KEYS, source)
    name = _text(data.get("name"), f"{source}: name", required=True) or ""
    dims_raw = data.get("dimensions")
    if not isinstance(dims_raw, list) or not dims_raw:
        raise CodebookError(f"{source}: dimensions: expected a non-empty list")
    dims: list[DimensionSpec] = []
    warnings: list[str] = []
    pending_conditions: list[tuple[str, dict[str, Any]]] = []
    for i, raw in enumerate(dims_raw):
        where = f"{source}: dimensions[{i}]"
        if not isinstance(raw, dict):
            raise CodebookError(f"{where}: expected a mapping")
        key = _text(raw.get("key"), f"{where}.key", required=True) or ""
        if not KEY_PATTERN.match(key):
            raise CodebookError(f"{where}.key: {key!r} must be lower_snake_case (a-z, 0-9, _)")
        where = f"{source}: dimensions[{i}] ({key})"
        _unknown(raw, DIMENSION_KEYS, where)
        if key in {d.key for d in dims}:
            raise CodebookError(f"{where}.key: dimension {key!r} appears twice")
        required = _bool(raw.get("required"), f"{where}.required")
        when = raw.get("required_when")
        if when is not None and (not isinstance(when, dict) or not when):
            raise CodebookError(f"{where}.required_when: expected a mapping like {{cause: 2}}")
        if required and when:
            raise CodebookError(f"{where}: give either 'required' or 'required_when', not both")
        if when:
            pending_conditions.append((key, when))
        dims.append(
            DimensionSpec(
                key=key,
                codes=_parse_codes(raw.get("codes"), f"{where}.codes", warnings),
                question=_text(raw.get("question"), f"{where}.question"),
                column=_text(raw.get("column"), f"{where}.column"),
                label_column=_text(raw.get("label_column"), f"{where}.label_column"),
                required=required,
            )
        )
    by_key = {d.key: d for d in dims}
    resolved: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, when in pending_conditions:
        where = f"{source}: dimensions ({key}).required_when"
        cond: dict[str, tuple[int, ...]] = {}
        for other, codes in when.items():
            if other not in by_key or other == key:
                raise CodebookError(f"{where}.{other}: no other dimension is called {other!r}")
            values = codes if isinstance(codes, list) else [codes]
            numbers = tuple(_code_number(v, f"{where}.{other}") for v in values)
            for n in numbers:
                if n not in by_key[other].codes:
                    raise CodebookError(f"{where}.{other}: dimension {other!r} has no code {n}")
            cond[other] = numbers
        resolved[key] = cond
    dims = [DimensionSpec(**{**d.__dict__, "required_when": resolved.get(d.key, {})}) for d in dims]
    _check_acyclic(dims, source)
    version = data.get("version")
    return CodebookSpec(
        name=name,
        dimensions=tuple(dims),
        declared_version=None if version is None else str(version),
        description=_text(data.get("description"), f"{source}: description"),
        warnings=tuple(warnings),
    )


def _check_acyclic(dims: list[DimensionSpec], source: str) -> None:
    """A condition must not depend (through others) on its own dimension."""
    deps = {d.key: set(d.required_when) for d in dims}

    def visit(key: str, path: tuple[str, ...]) -> None:
        for other in deps[key]:
            if other in path:
                raise CodebookError(f"{source}: dimensions ({key}).required_when: circular condition via {other!r}")
            visit(other, (*path, other))

    for key in deps:
        visit(key, (key,))


def read_codebook(path: str | Path) -> CodebookSpec:
    """Read and check a codebook file; every problem becomes one CodebookError line."""
    import yaml

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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected a single document …, but found another document"
            problem = f"{context}, {problem}"
        raise CodebookError(f"{path}:{where} not valid YAML: {problem}") from None
    return parse_codebook(data, str(path))
