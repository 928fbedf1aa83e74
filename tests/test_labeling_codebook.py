"""Codebook files: strict checks with one-line errors, versioned storage, identical re-load is a no-op."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest
from sqlmodel import select

from db.models.labeling import CodebookCode, CodebookDimension, CodebookVersion
from labeling.codebook import CodebookError, parse_codebook, read_codebook
from tests.support.labeling import table_rows

SMALL = """
name: tiny
version: 1
dimensions:
  - key: symptom
    required: true
    codes:
      1: {label: Crash, description: It crashes.}
      2: {label: Wrong Model, aliases: [Wrong Code]}
  - key: cause
    required: true
    codes:
      1: API Misuse
      2: {label: Incompatibility}
  - key: incompatibility_type
    required_when: {cause: 2}
    codes:
      1: {label: Internal}
"""


def write(tmp_path: Path, text: str, name: str = "book.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shared_codebook_parses_with_every_dimension_and_code(shared_dir: Path) -> None:
    spec = read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml")
    assert spec.name == "onnx-converter-failures"
    assert spec.keys == ["symptom", "cause", "incompatibility_type", "type_problem_type", "component"]
    assert {d.key: len(d.codes) for d in spec.dimensions} == {
        "symptom": 7,
        "cause": 14,
        "incompatibility_type": 3,
        "type_problem_type": 3,
        "component": 6,
    }
    assert spec.dimension("incompatibility_type").required_when == {"cause": (2,)}
    assert spec.dimension("cause").lookup("Incompatability").code == 2  # the sheets' misspelling is an alias
    assert spec.dimension("component").lookup("not dis.").code == 6
    assert spec.dimension("symptom").codes[4].unused
    assert spec.dimension("cause").codes[6].description == "A wrong value is assigned (constant, attribute, metadata)."
    assert spec.declared_version == "1"


def unquoted(shared_dir: Path) -> str:
    """The shared codebook with the quotes around its descriptions removed, as it was first written."""
    text = (shared_dir / "codebook" / "onnx-converter-failures.yaml").read_text()
    return re.sub(r'description: "([^"]*)"', r"description: \1", text)


def test_unquoted_commas_in_flow_mappings_are_glued_back_and_reported(shared_dir: Path, tmp_path: Path) -> None:
    quoted = read_codebook(shared_dir / "codebook" / "onnx-converter-failures.yaml")
    spec = read_codebook(write(tmp_path, unquoted(shared_dir)))
    # unquoted commas inside {…} split a description into stray keys; they are glued back and reported
    assert spec.content_hash() == quoted.content_hash()
    assert spec.dimension("cause").codes[6].description == "A wrong value is assigned (constant, attribute, metadata)."
    assert any("unquoted comma" in w for w in spec.warnings) and not quoted.warnings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ndimensions: [\n", "line"),
        ("- a\n- b\n", "expected a mapping"),
        ("name: x\n", "dimensions: missing"),
        ("name: x\ndimensions: []\n", "dimensions: expected a non-empty list"),
        ("name: x\ndimensions:\n  - key: Bad Key\n    codes: {1: A}\n", "lower_snake_case"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {one: A}\n", "dimensions[0] (a).codes.one"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {description: d}}\n", "codes.1.label: missing"),
        ("name: x\ndimensions:\n  - key: a\n    colour: red\n    codes: {1: A}\n", "unknown key 'colour'"),
        (
            "name: x\ndimensions:\n  - key: a\n    codes: {1: A, 2: {label: B, aliases: [a]}}\n",
            "already used by code 1",
        ),
        ("name: x\ndimensions:\n  - key: a\n    required_when: {b: 1}\n    codes: {1: A}\n", "required_when.b"),
        (
            "name: x\ndimensions:\n  - key: a\n    codes: {1: A}\n  - key: b\n    required_when: {a: 9}\n"
            "    codes: {1: B}\n",
            "has no code 9",
        ),
        ("name: x\ndimensions:\n  - key: a\n    required: yes please\n    codes: {1: A}\n", "required: expected true"),
    ],
)
def test_malformed_codebooks_give_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CodebookError) as info:
        read_codebook(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="cannot read"):
        read_codebook(tmp_path / "nope.yaml")


def test_conditions_decide_when_a_dimension_applies() -> None:
    import yaml

    spec = parse_codebook(yaml.safe_load(SMALL))
    dim = spec.dimension("incompatibility_type")
    assert dim.applies({"cause": 2}) and not dim.applies({"cause": 1}) and not dim.applies({})
    assert spec.dimension("symptom").applies({})


def test_load_is_versioned_and_identical_reload_is_a_no_op(cli, engine, tmp_path: Path, wide_console) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, SMALL)
    first = cli("label", "codebook", "load", str(path))
    assert first.exit_code == 0, first.output
    assert "stored as version 1" in first.output
    again = cli("label", "codebook", "load", str(path))
    assert again.exit_code == 0, again.output
    assert "not loaded: identical to version 1; it stays the current version" in again.output
    write(tmp_path, SMALL.replace("It crashes.", "It aborts."))
    changed = cli("label", "codebook", "load", str(path))
    assert "stored as version 2" in changed.output
    # the first file again: it is version 1, but version 2 stays the current one (nothing is stored)
    old = cli("label", "codebook", "load", str(write(tmp_path, SMALL, "old.yaml")))
    assert old.exit_code == 0, old.output
    assert "not loaded: identical to version 1; version 2 stays current" in old.output
    assert "stored" not in old.output and "is current" not in old.output
    with engine.connect() as conn:
        versions = conn.execute(select(CodebookVersion.version)).scalars().all()
        dims = conn.execute(select(CodebookDimension.id)).scalars().all()
        codes = conn.execute(select(CodebookCode.id)).scalars().all()
    assert sorted(versions) == [1, 2]
    assert len(dims) == 2 * 3 and len(codes) == 2 * 5
    listing = cli("label", "codebook", "list")
    assert listing.exit_code == 0, listing.output
    assert table_rows(listing.output) == [
        ["codebook", "version", "current", "declared", "loaded (UTC)", "source file"],
        ["tiny", "1", "", "1", "<time>", str(path)],
        ["tiny", "2", "yes", "1", "<time>", str(path)],
    ]


def test_cli_reports_malformed_file_in_one_line_and_stores_nothing(cli, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "name: x\ndimensions:\n  - key: a\n    codes: {1: {labl: A}}\n")
    result = cli("label", "codebook", "load", str(path))
    assert result.exit_code == 2
    assert "unknown key 'labl'" in result.output and str(path) in result.output.replace("\n", "")
    with engine.connect() as conn:
        assert conn.execute(select(CodebookVersion.id)).first() is None


def test_comma_warnings_come_once_per_description_and_not_on_a_no_op_load(
    cli, shared_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = write(tmp_path, unquoted(shared_dir))
    # independently: the code mappings YAML split into stray keys (one per unquoted comma)
    raw = yaml.safe_load(path.read_text())
    split = [
        (d["key"], code)
        for d in raw["dimensions"]
        for code, body in d["codes"].items()
        if isinstance(body, dict) and set(body) - {"label", "description", "aliases", "unused"}
    ]
    stray_keys = sum(
        len(set(body) - {"label", "description", "aliases", "unused"})
        for d in raw["dimensions"]
        for body in d["codes"].values()
        if isinstance(body, dict)
    )
    assert len(split) == 9 and stray_keys > len(split)  # some descriptions hold two commas
    first = cli("label", "codebook", "load", str(path))
    assert first.exit_code == 0, first.output
    warnings = [line for line in first.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(split)
    for key, code in split:
        assert sum(f"({key}).codes.{code}.description:" in w for w in warnings) == 1, (key, code)
    again = cli("label", "codebook", "load", str(path))
    assert again.exit_code == 0 and "warning" not in again.output and "not loaded" in again.output


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04\xc1\xff\x00binary",  # a zip archive, not UTF-8
        b"\xff\xfen\x00a\x00m\x00e\x00",  # UTF-16
        b"name: x\x00\x01\n",  # UTF-8 with control characters YAML refuses
        b"name: [x\ndimensions: {\n",  # broken YAML
        b"---\nname: a\n---\nname: b\n",  # two documents
        b"just some words\n",  # YAML, but not a mapping
    ],
)
def test_a_file_that_is_not_a_yaml_codebook_is_one_error_line_naming_it(
    cli,
    engine,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    content: bytes,
) -> None:
    path = tmp_path / "not-a-codebook.yaml"
    path.write_bytes(content)
    result = cli("label", "codebook", "load", str(path))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.output
    with engine.connect() as conn:
        assert conn.execute(select(CodebookVersion.id)).first() is None


DIM = "dimensions:\n  - key: a\n    codes: {1: A}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # duplicate keys, at any depth: YAML would silently keep the last one
        (
            "name: x\ndimensions:\n  - key: a\n    codes: {1: {label: A}, 1: {label: B}}\n",
            "line 4: duplicate key 1 (first at line 4, column 13)",
        ),
        (
            "name: x\ndimensions:\n  - key: a\n    codes:\n      1: A\n      2: B\n      1: C\n",
            "line 7: duplicate key 1",
        ),
        (
            "name: x\ndimensions:\n  - key: a\n    column: C1\n    column: C2\n    codes: {1: A}\n",
            "duplicate key 'column'",
        ),
        ("name: x\ndimensions:\n  - key: a\n    key: b\n    codes: {1: A}\n", "duplicate key 'key' (first at line 3)"),
        ("name: x\nname: y\n" + DIM, "line 2: duplicate key 'name'"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {label: A, label: B}}\n", "duplicate key 'label'"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {label: A, description: x, y, y}}\n", "quote the text"),
        # the same code written twice in two spellings
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: A, '1': B}\n", "code 1 appears twice"),
        # every field typed: version is a short scalar, texts are texts, codes fit the database
        ("name: x\nversion: [1, 2]\n" + DIM, "version: expected a short scalar"),
        ("name: x\nversion: {major: 1}\n" + DIM, "version: expected a short scalar"),
        ("name: x\nversion: " + "9" * 60 + "\n" + DIM, "version: expected at most 50 characters"),
        ("name: [x]\n" + DIM, "name: expected a non-empty text"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {label: true}}\n", "codes.1.label: expected a non-empty"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: " + "L" * 201 + "}\n", "at most 200 characters"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {99999999999: A}\n", "codes.99999999999: codes must be at most"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {-1: A}\n", "must not be negative"),
        ("name: x\ndimensions:\n  - key: a\n    question: [q]\n    codes: {1: A}\n", "question: expected a non-empty"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {label: A, aliases: B}}\n", "aliases: expected a list"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: {labl: A}}\n", "did you mean 'label'?"),
        ("name: x\ndimensions:\n  - key: a\n    codes: {1: A}\n  - key: a\n    codes: {1: A}\n", "appears twice"),
        ("name: x\ndimensions:\n  - a\n", "dimensions[0]: expected a mapping"),
        # aliases that refer to themselves, and nesting deeper than a codebook ever needs
        ("name: x\nversion: &v [1, *v]\n" + DIM, "recursive alias"),
        ("name: " + "[" * 3000 + "]" * 3000 + "\n" + DIM, "nested too deeply"),
    ],
)
def test_duplicate_keys_wrong_types_and_odd_yaml_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CodebookError) as info:
        read_codebook(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert message in str(info.value)


def billion_laughs() -> str:
    """Nine levels of nine aliases under `version:` (under 400 bytes; written out, billions of scalars)."""
    levels = ["&a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [{','.join([f'*{prev}'] * 9)}]")
    return "name: x\nversion: [" + ",\n  ".join(levels) + "]\n" + DIM


def test_alias_bomb_under_version_is_refused_while_loading_with_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path, billion_laughs())
    assert path.stat().st_size < 500
    tracemalloc.start()
    try:
        with pytest.raises(CodebookError, match="aliases would expand the document by 1,797,873,156"):
            read_codebook(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the document itself, never its expansion (which was 628 MB for a smaller bomb)


def test_anchors_and_merge_keys_within_the_bound_still_load(tmp_path: Path) -> None:
    text = (
        "name: x\nversion: 2024-05-01\ndimensions:\n"
        "  - key: a\n    codes:\n      1: &base {label: A, description: shared words}\n"
        "      2: {<<: *base, label: B}\n"
        "  - key: b\n    required_when: {a: [1, 2]}\n    codes: {1: {label: C, aliases: &al [c1, c2]}}\n"
    )
    spec = read_codebook(write(tmp_path, text))
    assert spec.declared_version == "2024-05-01"
    assert spec.dimension("a").codes[2].label == "B" and spec.dimension("a").codes[2].description == "shared words"
    assert spec.dimension("b").codes[1].aliases == ("c1", "c2")
    assert spec.dimension("b").required_when == {"a": (1, 2)}
