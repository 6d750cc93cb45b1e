"""The cheap half of template validation: YAML shape against the pydantic model, nothing compiled.

DAG files run this at parse time (``check_template_spec``) so a broken template is an import error
in the UI at once instead of a task failure hours later. It imports neither Arrow nor the engine;
``validate.py`` builds the full check (types, targets, value maps compiled) on top of it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from usdirect.mapping.errors import TemplateError, TemplateIssue
from usdirect.mapping.model import (
    ChildSpec,
    ClampArgs,
    Condition,
    FieldSpec,
    ReplaceArgs,
    RoundArgs,
    Rule,
    Step,
    Switches,
    TemplateSpec,
    ValueMapFile,
    ValueMapSpec,
)
from usdirect.mapping.yaml_lines import LocatedYaml, YamlPath, load_located_yaml

M = TypeVar("M", bound=BaseModel)


def check_template_spec(path: str | Path, operation: str) -> TemplateSpec:
    """Read a template and its value-map files and check their YAML shape; raises TemplateError.

    ``operation`` is the template kind the caller runs (inventory, orders, shipments, invoices): a
    template written for another operation is refused here, with the line of its ``operation:``.
    """
    located = load_located_yaml(path)
    spec = parse_model(located, TemplateSpec)
    _, issues = collect_value_maps(located, spec)
    if spec.operation != operation:
        issues.insert(
            0,
            located.issue(
                ("operation",),
                f"this is an {spec.operation!r} template, but it is set for {operation!r}",
                f"point the setting at an {operation} template (include/mappings/) or fix `operation:`",
            ),
        )
    if issues:
        raise TemplateError(issues)
    return spec


def parse_model(located: LocatedYaml, model: type[M]) -> M:
    if not isinstance(located.data, dict):
        raise TemplateError(
            [located.issue((), "the file is not a YAML mapping", "start the file with `operation: ...`")]
        )
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise TemplateError([_pydantic_issue(located, err) for err in exc.errors()]) from None


def _pydantic_issue(located: LocatedYaml, err: Any) -> TemplateIssue:
    path = _data_path(located.data, err["loc"], err["type"])
    where = ".".join(str(p) for p in path) or "the file"
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = _allowed_keys(path[:-1])
        if len(path) >= 3 and path[-3] == "transforms":
            return located.issue(
                path,
                f"unknown transform {key!r}",
                f"use one of: {', '.join(allowed)}{did_you_mean(key, allowed)}",
            )
        return located.issue(
            path,
            f"unknown key {key!r} in {'.'.join(str(p) for p in path[:-1]) or 'the top level'}",
            f"allowed keys here: {', '.join(allowed)}{did_you_mean(key, allowed)}",
        )
    if kind == "missing":
        return located.issue(path[:-1], f"missing required key {path[-1]!r}", f"add `{path[-1]}:` here")
    message = err["msg"].removeprefix("Value error, ")
    return located.issue(path, f"{where}: {message}", "correct the value as the message says")


def _data_path(data: Any, loc: tuple[Any, ...], kind: str) -> YamlPath:
    """Map a pydantic location onto the YAML path (pydantic adds union-member names to it)."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif last and kind in ("extra_forbidden", "missing"):
            path.append(part)
    return tuple(path)


_MODELS_BY_PARENT: dict[str, type[BaseModel]] = {
    "fields": FieldSpec,
    "value_maps": ValueMapSpec,
    "children": ChildSpec,
    "transforms": Step,
    "rules": Rule,
}
_MODELS_BY_KEY: dict[str, type[BaseModel]] = {
    "switches": Switches,
    "reject_if": Condition,
    "replace": ReplaceArgs,
    "round": RoundArgs,
    "clamp": ClampArgs,
}


def _allowed_keys(path: YamlPath) -> list[str]:
    model: type[BaseModel] = TemplateSpec
    if path:
        last = path[-1]
        parent = path[-2] if len(path) >= 2 else None
        if isinstance(last, str) and last in _MODELS_BY_KEY:
            model = _MODELS_BY_KEY[last]
        elif isinstance(parent, str) and parent in _MODELS_BY_PARENT:
            model = _MODELS_BY_PARENT[parent]
    return [info.alias or name for name, info in model.model_fields.items()]


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def collect_value_maps(
    located: LocatedYaml, spec: TemplateSpec
) -> tuple[dict[str, tuple[ValueMapSpec, LocatedYaml, YamlPath]], list[TemplateIssue]]:
    """Inline value maps plus those of the listed files (paths relative to the template)."""
    issues: list[TemplateIssue] = []
    found: dict[str, tuple[ValueMapSpec, LocatedYaml, YamlPath]] = {
        name: (vm, located, ("value_maps", name)) for name, vm in spec.value_maps.items()
    }
    base = Path(located.file).parent
    for index, relative in enumerate(spec.value_map_files):
        try:
            other = load_located_yaml(base / relative)
            shared = parse_model(other, ValueMapFile)
        except TemplateError as exc:
            issues.extend(exc.issues)
            if not (base / relative).is_file():
                issues.append(
                    located.issue(
                        ("value_map_files", index),
                        f"value map file {relative!r} not found next to the template",
                        "give a path relative to this template's folder",
                    )
                )
            continue
        for name, vm in shared.value_maps.items():
            if name in found:
                issues.append(
                    other.issue(
                        ("value_maps", name),
                        f"value map {name!r} is also defined in {found[name][1].file}",
                        "rename one of them or delete the duplicate",
                    )
                )
                continue
            found[name] = (vm, other, ("value_maps", name))
    return found, issues
