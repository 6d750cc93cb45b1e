"""Settings-file problems in the words of the file: ``usdirect.yaml:57: <key> … Fix: …``.

pydantic reports a location such as ``operations.send_orders.max_worker`` and "Extra inputs are not
permitted"; a person editing the file needs the line, what is wrong in plain words and what to
write instead (with the closest valid key for a typo). Lines come from the same line-tracking
loader the mapping templates use.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from usdirect.mapping.errors import TemplateIssue
from usdirect.mapping.yaml_lines import LocatedYaml, YamlPath

Loc = tuple[str | int, ...]
HIDDEN_FIELDS = frozenset({"path"})  # set by the loader, never written in the file


class SettingValueError(ValueError):
    """A validator's refusal with the fix; ``path`` overrides pydantic's location when given."""

    def __init__(self, problem: str, fix: str, path: Loc = ()) -> None:
        self.problem = problem
        self.fix = fix
        self.path = path
        super().__init__(f"{problem}. Fix: {fix}")


def issue_at(located: LocatedYaml, loc: Loc, problem: str, fix: str) -> TemplateIssue:
    """An issue at the line of ``loc`` (pydantic or file path; union tags are skipped)."""
    return located.issue(_data_path(located.data, loc), problem, fix)


def validation_issues(
    located: LocatedYaml, exc: ValidationError, root: type[BaseModel]
) -> list[TemplateIssue]:
    """One located issue per pydantic error of ``root.model_validate(located.data)``."""
    return [_issue(located, err, root) for err in exc.errors(include_url=False)]


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _issue(located: LocatedYaml, err: Any, root: type[BaseModel]) -> TemplateIssue:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, SettingValueError):
        path = cause.path or loc
        return issue_at(located, path, f"{_dotted(path)}: {cause.problem}", cause.fix)
    key = _dotted(loc)
    if kind == "extra_forbidden":
        allowed = _keys_of(root, loc[:-1])
        hint = did_you_mean(str(loc[-1]), allowed)
        fix = f"delete it or correct the key{hint}"
        if not hint and allowed:
            fix += f"; settings here: {', '.join(allowed)}"
        return issue_at(located, loc, f"{key} is not a setting", fix)
    if kind == "missing":
        parent = _dotted(_data_path(located.data, loc[:-1])) or "the top level"
        return issue_at(located, loc[:-1], f"{key} is missing", f"add `{loc[-1]}:` under {parent}")
    message = str(err["msg"]).removeprefix("Value error, ")
    return issue_at(located, loc, f"{key}: {message}", _fix_for(kind))


def _fix_for(kind: str) -> str:
    if kind in ("literal_error", "union_tag_invalid", "enum"):
        return "write one of the values listed"
    if kind.startswith(("greater_than", "less_than")):
        return "write a value within the limit stated"
    if kind in ("too_short", "too_long"):
        return "give the number of entries stated"
    if kind == "string_pattern_mismatch":
        return "use lowercase letters, digits and _ only, starting with a letter (at most 31 characters)"
    if kind.endswith(("_type", "_parsing")):
        return "write a value of the type stated (quote text, no quotes around numbers)"
    return "correct the value as the message says"


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _data_path(data: Any, loc: Loc) -> YamlPath:
    """The part of ``loc`` that exists in the file (pydantic adds union tags that are not keys)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            current = current[part]
            path.append(part)
    return tuple(path)


def _keys_of(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a model accepts at ``loc``, for the did-you-mean hint ([] when not a model there)."""
    model = _model_at(root, loc)
    if model is None:
        return []
    hidden = HIDDEN_FIELDS if model is root else frozenset()
    return [info.alias or name for name, info in model.model_fields.items() if name not in hidden]


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif _is_union(current):
            current = next((m for m in get_args(current) if _tag(m) == part), None)
            if current is None:
                return None
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif _is_union(annotation):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _tag(member: Any) -> str | None:
    """The ``type:`` literal of a discriminated-union member model."""
    if not (isinstance(member, type) and issubclass(member, BaseModel)) or "type" not in member.model_fields:
        return None
    annotation = member.model_fields["type"].annotation
    values = get_args(annotation) if get_origin(annotation) is Literal else ()
    return str(values[0]) if values else None
