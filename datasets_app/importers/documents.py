"""Read a JSON or YAML document together with the line where each of its values starts, so
errors name the real line of a test or an assertion, not line 1 of the file."""

import json
import re
from typing import Any

import yaml

from datasets_app.importers.base import Batch

Path_ = tuple[str | int, ...]


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's plain scalars, as promptfoo's js-yaml reads them:
    `no`, `yes`, `on` and `off` are text (YAML 1.1 made them booleans), `1e5` is a number."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class Located:
    """A parsed document and the 1-based line of each value in it, by path."""

    def __init__(self, value: Any, lines: dict[Path_, int]) -> None:
        self.value = value
        self._lines = lines

    def line(self, *path: str | int) -> int:
        """The line of the value at ``path``, else of its nearest located parent (else 1)."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), 1)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            if isinstance(key, yaml.ScalarNode):
                _walk(child, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _walk(child, (*path, index), lines)


def _lines_of(text: str, loader: type[yaml.SafeLoader]) -> dict[Path_, int]:
    # Composing (not constructing) gives every node's position; JSON is YAML for this purpose.
    # A document PyYAML cannot compose (tabs in JSON indentation, say) gets no positions:
    # its errors then name the test or item by number instead.
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return lines


def load_document(text: str, batch: Batch, *, yaml_1_1: bool = False) -> Located | None:
    """The parsed document, or None when it is broken (reported with its line). YAML is read as
    YAML 1.2 (JavaScript tools: promptfoo), or as PyYAML's 1.1 for Python tools' files."""
    loader = yaml.SafeLoader if yaml_1_1 else Yaml12Loader
    # A file that opens like JSON is read as JSON: YAML would accept `{"vars": }` as null, and
    # YAML 1.1 reads JSON's 1e5 as a string.
    if text.lstrip().startswith(("{", "[")):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            batch.error(exc.lineno, "json", f"invalid JSON: {exc.msg} (column {exc.colno})")
            return None
        return Located(value, _lines_of(text, loader))
    try:
        value = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        batch.error(mark.line + 1 if mark else 1, "yaml", f"invalid YAML: {problem}")
        return None
    return Located(value, _lines_of(text, loader))
