"""The YAML loader specs are read with: safe, strict about keys, and bounded.

PyYAML puts no limit on nesting (deep input ends in a RecursionError) nor on aliases: nine
anchors of nine aliases each ("billion laughs") load quickly as a shared graph, but anything
that walks or prints the result then visits 9**9 values. This loader counts, while composing,
how deep nodes nest and how many values aliases repeat, and refuses a document past either bound.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64  # a spec nests sets in sets, but nowhere near this deep
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_ALIAS_VALUES = 10_000  # values aliases may repeat in one document; shared blocks need a few hundred


class LimitExceeded(yaml.MarkedYAMLError):
    """A document nests too deep or its aliases expand to too much: refused, not invalid."""


class SpecLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate and non-scalar keys, deep nesting, alias bombs and
    alias cycles, and reports unreadable scalars (a 5000-digit int, 2001-13-45) as YAML errors.
    Merge keys (`<<: *defaults`, as compose files share blocks) are YAML's own."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # node → (values in it, counting what its aliases repeat; levels it nests), once composed
        self._measured: dict[yaml.Node, tuple[int, int]] = {}
        self._alias_values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = self._composed(parent, index)
            self._charge_alias(node, mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise LimitExceeded(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            node = self._composed(parent, index)
        finally:
            self._depth -= 1
        self._measured[node] = self._measure(node)
        return node

    def _composed(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        node = super().compose_node(parent, index)
        if node is None:  # only when the stream has ended, which compose_node is never called at
            raise yaml.composer.ComposerError(None, None, "expected a node", self.peek_event().start_mark)
        return node

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return 1, 1
        sizes = [self._measured[child] for child in children]
        return 1 + sum(s[0] for s in sizes), 1 + max((s[1] for s in sizes), default=0)

    def _charge_alias(self, node: yaml.Node, mark: yaml.Mark) -> None:
        if node not in self._measured:  # its anchor is still open: the alias is inside it
            raise LimitExceeded(None, None, "an alias inside the value it names (a cycle)", mark)
        values, height = self._measured[node]
        if self._depth + height > MAX_DEPTH:
            raise LimitExceeded(None, None, f"nested deeper than {MAX_DEPTH} levels through an alias", mark)
        self._alias_values += values
        if self._alias_values > MAX_ALIAS_VALUES:
            raise LimitExceeded(None, None, f"aliases repeat more than {MAX_ALIAS_VALUES} values "
                                "(an alias bomb?); write the values out or share fewer", mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
            shown = repr(text[:24] + "…" if len(text) > 24 else text)
            reason = str(exc).split(":", 1)[0].split(";", 1)[0]  # drop Python's advice to the programmer
            raise yaml.constructor.ConstructorError(
                None, None, f"unreadable {kind} {shown} ({reason[:1].lower()}{reason[1:]})", node.start_mark) from None


def _construct_mapping(loader: SpecLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue  # `<<: *anchor`: flattened below, the mapping's own keys winning (YAML's merge key)
        key = loader.construct_object(key_node, deep=deep)
        mark = key_node.start_mark
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {type(key).__name__} (line {mark.line + 1})", mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
