"""YAML for hand-written configuration: safe tags only, no duplicate keys, bounded alias expansion.

PyYAML's safe loader keeps the last of two equal keys without a word and lets a few hundred bytes of nested
aliases expand into gigabytes once something walks the result (`str()`, JSON). Both are refused here while
the document is composed, before any Python object is built."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from db.errors import InteropError

#: How much aliases may add to a document (scalar characters plus nodes, counted as if every alias were
#: written out). Anchors that reuse a list of aliases stay far below; a "billion laughs" file goes far above.
MAX_ALIAS_EXPANSION = 10_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictYamlError(InteropError, yaml.YAMLError):
    """A document this loader refuses; `problem` says why and `problem_mark` where (like PyYAML's errors)."""

    def __init__(self, problem: str, mark: Any = None, context: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark
        self.context = context


def _own_size(node: Node) -> int:
    return 1 + (len(node.value) if isinstance(node, ScalarNode) else 0)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_alias_expansion(root: Node, limit: int = MAX_ALIAS_EXPANSION) -> None:
    """Refuse a node graph whose aliases, written out, would add more than `limit` (or that refers to itself).

    Sizes are memoized per node, so the check costs one pass over the distinct nodes however large the
    expansion would be."""
    expanded: dict[int, int] = {}
    unique: dict[int, int] = {}
    state: dict[int, int] = {}  # 1: being visited, 2: done
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            expanded[key] = _own_size(node) + sum(expanded[id(c)] for c in _children(node))
            state[key] = 2
            continue
        if state.get(key) == 2:
            continue
        if state.get(key) == 1:
            raise StrictYamlError("an alias refers to a node that contains it (recursive alias)", node.start_mark)
        state[key] = 1
        unique[key] = _own_size(node)
        stack.append((node, True))
        for child in _children(node):
            if state.get(id(child)) == 1:
                raise StrictYamlError("an alias refers to a node that contains it (recursive alias)", child.start_mark)
            if state.get(id(child)) != 2:
                stack.append((child, False))
    extra = expanded[id(root)] - sum(unique.values())
    if extra > limit:
        raise StrictYamlError(
            f"aliases would expand the document by {extra:,} characters and nodes (at most {limit:,} allowed); "
            "write the values out instead of nesting aliases"
        )


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (at any depth) and alias bombs."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            check_alias_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:
                    continue  # `<<: *base` merges on purpose; later keys override merged ones
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get((type(key), key))  # 1, 1.0 and true are different YAML keys
                except TypeError:
                    continue  # an unhashable key: PyYAML's own error follows
                if first is not None:
                    hint = (
                        " (an unquoted comma inside {…} splits a text into keys: quote the text)"
                        if node.flow_style and isinstance(value_node, ScalarNode) and value_node.value == ""
                        else ""
                    )
                    at = f"line {first.line + 1}" + (
                        f", column {first.column + 1}" if first.line == key_node.start_mark.line else ""
                    )
                    raise StrictYamlError(
                        f"duplicate key {key!r} (first at {at}): a key may appear only once{hint}", key_node.start_mark
                    )
                seen[(type(key), key)] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """One YAML document, strictly; raises yaml.YAMLError (StrictYamlError for what only this loader refuses)."""
    return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader: no arbitrary objects
