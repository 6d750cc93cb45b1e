"""Load YAML keeping the line of every key and item, and refusing duplicate keys.

PyYAML silently keeps the last of two equal keys, which would hide a value-map typo such as two
`UPSG:` entries. Template errors must point at a line, so the loader records one per path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from usdirect.mapping.errors import TemplateError, TemplateIssue

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YamlPath = tuple[str | int, ...]


class LocatedYaml:
    """The plain data of a YAML document plus the 1-based line of each key / list item."""

    def __init__(self, file: str, data: Any, lines: dict[YamlPath, int]) -> None:
        self.file = file
        self.data = data
        self.lines = lines

    def line_of(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def issue(self, path: YamlPath, message: str, fix: str) -> TemplateIssue:
        return TemplateIssue(self.file, self.line_of(path), message, fix)


def load_located_yaml(path: str | Path) -> LocatedYaml:
    """Parse one YAML file; raises TemplateError on syntax errors and duplicate keys."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(
            [TemplateIssue(file, 0, f"cannot read the file ({exc.strerror})", "check the path")]
        ) from None
    loader = Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError(
            [TemplateIssue(file, line, f"YAML syntax error: {problem}", "fix the indentation or quoting")]
        ) from None
    finally:
        loader.dispose()
    lines: dict[YamlPath, int] = {}
    issues: list[TemplateIssue] = []
    if node is None:
        return LocatedYaml(file, None, {(): 1})
    lines[()] = node.start_mark.line + 1
    data = _convert(node, (), lines, issues, file, Loader(""))
    if issues:
        raise TemplateError(issues)
    return LocatedYaml(file, data, lines)


def _convert(
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    issues: list[TemplateIssue],
    file: str,
    constructor: Any,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                issues.append(
                    TemplateIssue(
                        file,
                        key_node.start_mark.line + 1,
                        "YAML merge keys (<<) are not supported",
                        "write the keys out",
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                issues.append(
                    TemplateIssue(
                        file, key_node.start_mark.line + 1, "a key must be plain text", "write a plain key"
                    )
                )
                continue
            # Keys stay text: YAML 1.1 would read `yes:`/`no:`/`on:` value-map keys as booleans.
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in result:
                first = lines[(*path, key)]
                issues.append(
                    TemplateIssue(
                        file,
                        line,
                        f"duplicate key {key!r} (first written on line {first})",
                        "keep one of the two entries",
                    )
                )
                continue
            lines[(*path, key)] = line
            result[key] = _convert(value_node, (*path, key), lines, issues, file, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_convert(item, (*path, index), lines, issues, file, constructor))
        return items
    return constructor.construct_object(node, deep=True)
