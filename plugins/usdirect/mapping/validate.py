"""Template validation and compilation: YAML → pydantic spec → vectorised plans.

Every problem becomes a `TemplateIssue` with the file, the line and a fix, and all of them are
reported together so that a user fixes a template in one pass.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from usdirect.mapping import kernels
from usdirect.mapping.engine import FieldPlan, NumberStep, RulePlan, TablePlan, TextStep
from usdirect.mapping.errors import TemplateError, TemplateIssue
from usdirect.mapping.model import (
    NUMBER_STEPS,
    FieldSpec,
    RoundArgs,
    Rule,
    Step,
    TemplateSpec,
    ValueMapFile,
    ValueMapSpec,
)
from usdirect.mapping.schema import CANONICAL, TYPE_HELP, OperationTargets, Target, parse_type, type_name
from usdirect.mapping.spec_check import collect_value_maps, did_you_mean, parse_model
from usdirect.mapping.yaml_lines import LocatedYaml, YamlPath

POSITION = "$position"  # child source: the item's 1-based position in its list


@dataclass(frozen=True)
class CompiledTemplate:
    spec: TemplateSpec
    targets: OperationTargets
    parent: TablePlan
    child: TablePlan | None
    child_source: str | None
    source_lines: dict[str, int]  # source column → line of the first field that reads it


def compile_template(located: LocatedYaml) -> CompiledTemplate:
    """Validate a loaded template file and compile it; raises TemplateError listing every issue."""
    spec = parse_model(located, TemplateSpec)
    value_maps, issues = collect_value_maps(located, spec)
    compiler = _Compiler(located, spec, value_maps, issues)
    compiled = compiler.run()
    if issues:
        raise TemplateError(issues)
    return compiled


def check_value_map_file(located: LocatedYaml) -> list[str]:
    """Validate a shared value-map file on its own; returns the map names."""
    shared = parse_model(located, ValueMapFile)
    issues: list[TemplateIssue] = []
    for name, vm in shared.value_maps.items():
        _compile_value_map(name, vm, located, ("value_maps", name), issues)
    if issues:
        raise TemplateError(issues)
    return list(shared.value_maps)


class _Compiler:
    def __init__(
        self,
        located: LocatedYaml,
        spec: TemplateSpec,
        value_maps: dict[str, tuple[ValueMapSpec, LocatedYaml, YamlPath]],
        issues: list[TemplateIssue],
    ) -> None:
        self.located = located
        self.spec = spec
        self.targets = CANONICAL[spec.operation]
        self.value_map_specs = value_maps
        self.issues = issues
        self.value_maps = {
            name: _compile_value_map(name, *entry, issues) for name, entry in value_maps.items()
        }
        self.source_lines: dict[str, int] = {}

    def issue(self, path: YamlPath, message: str, fix: str) -> None:
        self.issues.append(self.located.issue(path, message, fix))

    def run(self) -> CompiledTemplate:
        op = self.spec.operation
        if self.spec.switches is not None:
            if op != "inventory":
                self.issue(
                    ("switches",), f"switches apply to inventory templates, not {op}", "remove `switches:`"
                )
            elif not any(self.spec.switches.model_dump().values()):
                self.issue(("switches",), "every switch is off, so a run could write nothing", "turn one on")
        parent = self._table(
            ("fields",), self.spec.fields, self.targets.targets, self.spec.rules, ("rules",), child=False
        )
        child_plan, child_source = self._children()
        return CompiledTemplate(self.spec, self.targets, parent, child_plan, child_source, self.source_lines)

    def _children(self) -> tuple[TablePlan | None, str | None]:
        expected = self.targets.child
        for name in self.spec.children:
            if expected is None or name != expected.name:
                fix = f"name it `{expected.name}`" if expected else "remove `children:`"
                self.issue(("children", name), f"{self.spec.operation} has no child list {name!r}", fix)
        if expected is None:
            return None, None
        child = self.spec.children.get(expected.name)
        if child is None:
            self.issue(
                (),
                f"the {self.spec.operation} template must map the child list {expected.name!r}",
                f"add `children:` → `{expected.name}:` with `source:` and `fields:`",
            )
            return None, None
        base: YamlPath = ("children", expected.name)
        plan = self._table(
            (*base, "fields"), child.fields, expected.targets, child.rules, (*base, "rules"), child=True
        )
        return plan, child.source

    def _table(
        self,
        base: YamlPath,
        fields: dict[str, FieldSpec],
        targets: tuple[Target, ...],
        rules: list[Rule],
        rules_base: YamlPath,
        *,
        child: bool,
    ) -> TablePlan:
        by_name = {t.name: t for t in targets}
        names = list(by_name)
        plans: dict[str, FieldPlan] = {}
        broken: set[str] = set()  # fields already reported; rules on them are not reported again
        for target_name, field in fields.items():
            path = (*base, target_name)
            target = by_name.get(target_name)
            if target is None:
                self.issue(
                    path,
                    f"unknown target field {target_name!r} for {self.spec.operation}",
                    f"use one of: {', '.join(names)}{did_you_mean(target_name, names)}",
                )
                continue
            plan = self._field(path, target, field, child=child)
            if plan is not None:
                plans[target_name] = plan
            else:
                broken.add(target_name)
        for target in targets:
            if target.required and target.name not in fields:
                self.issue(
                    base,
                    f"required target field {target.name!r} is not mapped",
                    f"add `{target.name}:` under this `fields:` with a `source:`",
                )
        schema = pa.schema([(t.name, parse_type(t.type)) for t in targets])
        rule_plans = [
            self._rule((*rules_base, i), rule, plans)
            for i, rule in enumerate(rules)
            if rule.reject_if.field not in broken
        ]
        ordered = tuple(plans[t.name] for t in targets if t.name in plans)
        return TablePlan(ordered, schema, tuple(r for r in rule_plans if r is not None))

    def _field(self, path: YamlPath, target: Target, field: FieldSpec, *, child: bool) -> FieldPlan | None:
        expected = parse_type(target.type)
        if field.type is not None:
            try:
                declared = parse_type(field.type)
            except ValueError as exc:
                self.issue((*path, "type"), str(exc), f"use {TYPE_HELP}")
                return None
            if declared != expected and not _narrower_decimal(declared, expected):
                self.issue(
                    (*path, "type"),
                    f"{target.name} is {target.type} in the pipeline, the template says {field.type}",
                    f"write `type: {target.type}` or remove the type line",
                )
                return None
        if target.required and field.required is False:
            self.issue((*path, "required"), f"{target.name} is always required", "remove `required: false`")
        given = [k for k in ("source", "sources", "format", "constant") if k in field.model_fields_set]
        if len(given) != 1:
            self.issue(
                path,
                f"{target.name} needs exactly one of source, sources, format, constant (has {len(given)})",
                "keep one, e.g. `source: sku`",
            )
            return None
        how = given[0]
        columns: tuple[str, ...] = ()
        parts: list[str | tuple[str]] = []
        constant = None
        if how == "source":
            columns = (field.source or "",)
        elif how == "sources":
            columns = tuple(field.sources or ())
            if not columns:
                self.issue((*path, "sources"), "sources is empty", "list at least one source")
                return None
        elif how == "format":
            try:
                for literal, name, _spec, _conv in string.Formatter().parse(field.format or ""):
                    if literal:
                        parts.append(literal)
                    if name is not None:
                        if not name:
                            raise ValueError("empty {} placeholder")
                        parts.append((name,))
            except ValueError as exc:
                self.issue(
                    (*path, "format"), f"bad format: {exc}", 'write e.g. "{addressLine1}, {addressLine2}"'
                )
                return None
            columns = tuple(dict.fromkeys(p[0] for p in parts if isinstance(p, tuple)))
            if not columns:
                self.issue((*path, "format"), "format names no source", 'use placeholders like "{city}"')
                return None
        else:
            constant = _text(field.constant)
        for column in columns:
            if column == POSITION and not child:
                self.issue((*path, how), f"{POSITION} only exists in child lists", "use a source field")
            self.source_lines.setdefault(column, self.located.line_of((*path, how)))
        text_steps, number_steps = self._steps(path, target, expected, field.transforms)
        default = self._literal((*path, "default"), field.default, expected, "default")
        if constant is not None:
            self._literal((*path, "constant"), field.constant, expected, "constant")
        return FieldPlan(
            target=target.name,
            dtype=expected,
            type_name=type_name(expected),
            columns=columns,
            how=how,
            join=field.join,
            parts=tuple(parts),
            constant=constant,
            text_steps=tuple(text_steps),
            number_steps=tuple(number_steps),
            default=default,
            required=target.required or bool(field.required),
        )

    def _literal(self, path: YamlPath, value: Any, dtype: pa.DataType, what: str) -> pa.Scalar | None:
        if value is None:
            return None
        try:
            return kernels.scalar_for(value, dtype)
        except ValueError:
            name = type_name(dtype)
            self.issue(path, f"{what} {value!r} is not a valid {name}", f"write a value of type {name}")
            return None

    def _steps(
        self, path: YamlPath, target: Target, dtype: pa.DataType, steps: list[Step]
    ) -> tuple[list[TextStep], list[NumberStep]]:
        text: list[TextStep] = []
        numbers: list[NumberStep] = []
        numeric = pa.types.is_integer(dtype) or pa.types.is_decimal(dtype)
        text_allowed = True  # False once a number step was seen: text steps must come first
        for index, step in enumerate(steps):
            step_path = (*path, "transforms", index)
            name, arg = step.name, step.arg
            if name in NUMBER_STEPS:
                text_allowed = False
                if not numeric:
                    self.issue(
                        step_path,
                        f"{name} needs an int or decimal field, {target.name} is {target.type}",
                        f"remove `{name}`",
                    )
                    continue
                number_step = self._number_step(step_path, name, arg, dtype)
                if number_step is not None:
                    numbers.append(number_step)
                continue
            if not text_allowed:
                self.issue(
                    step_path,
                    f"{name} works on text but comes after round/clamp",
                    f"move `{name}` above them",
                )
                continue
            made = self._text_step(step_path, target, dtype, name, arg, last=index == len(steps) - 1)
            if made is not None:
                text.append(made)
        return text, numbers

    def _text_step(
        self, path: YamlPath, target: Target, dtype: pa.DataType, name: str, arg: Any, *, last: bool
    ) -> TextStep | None:
        if name == "map":
            vm = self.value_maps.get(arg)
            if vm is None:
                known = list(self.value_maps)
                self.issue(
                    path,
                    f"unknown value map {arg!r}",
                    f"define it under `value_maps:` or in a file listed in `value_map_files:` "
                    f"(known: {', '.join(known) or 'none'}){did_you_mean(arg, known)}",
                )
                return None
            self._check_map_values(arg, target, dtype)
            return lambda a: vm.apply(a, target.name)
        if name == "replace":
            try:
                pc.replace_substring_regex(
                    pa.array([""], pa.string()), pattern=arg.pattern, replacement=arg.with_
                )
            except pa.ArrowInvalid as exc:
                self.issue(path, f"bad regular expression: {exc}", "fix the pattern (RE2 syntax)")
                return None
            return _plain(pc.replace_substring_regex, pattern=arg.pattern, replacement=arg.with_)
        if arg is False:
            self.issue(path, f"`{name}: false` does nothing", f"remove the `{name}` transform")
            return None
        simple: dict[str, Callable[[pa.Array], pa.Array]] = {
            "strip": kernels.strip,
            "currency": kernels.parse_currency,
            "capped": kernels.uncap,
        }
        if name in simple:
            return _plain(simple[name])
        if name == "case":
            return _plain({"lower": pc.utf8_lower, "upper": pc.utf8_upper, "title": pc.utf8_title}[arg])
        if name == "null_if":
            values = pa.array([str(v) for v in arg], pa.string())
            return _plain(lambda a: pc.if_else(pc.is_in(a, value_set=values), kernels.null_like(a), a))
        if name in ("prefix", "suffix"):
            if not isinstance(arg, str) or not arg:
                self.issue(path, f"{name} needs a text", f'write e.g. `{name}: "USD-"`')
                return None
            return _plain(kernels.add_prefix if name == "prefix" else kernels.add_suffix, text=arg)
        if name in ("remove_prefix", "remove_suffix"):
            func = kernels.remove_prefix if name == "remove_prefix" else kernels.remove_suffix
            return _plain(lambda a: func(a, arg))
        raise AssertionError(f"transform {name} has no kernel")  # model and kernels out of step

    def _number_step(self, path: YamlPath, name: str, arg: Any, dtype: pa.DataType) -> NumberStep | None:
        if name == "round":
            args = arg if isinstance(arg, RoundArgs) else RoundArgs(digits=arg)
            if pa.types.is_integer(dtype):
                return lambda a: a
            return lambda a: pc.round(a, ndigits=args.digits, round_mode=args.mode)
        low, high = arg.min, arg.max
        if low is None and high is None:
            self.issue(path, "clamp needs min, max or both", "write e.g. `clamp: {min: 0, max: 9999}`")
            return None
        if low is not None and high is not None and low > high:
            self.issue(path, f"clamp min {low} is above max {high}", "swap them")
            return None
        bounds = [kernels.scalar_for(b, dtype) if b is not None else None for b in (low, high)]

        def clamp(a: pa.Array) -> pa.Array:
            if bounds[0] is not None:
                a = pc.if_else(pc.less(a, bounds[0]), bounds[0], a)
            if bounds[1] is not None:
                a = pc.if_else(pc.greater(a, bounds[1]), bounds[1], a)
            return a

        return clamp

    def _check_map_values(self, name: str, target: Target, dtype: pa.DataType) -> None:
        """A value map feeding a typed field must produce values of that type."""
        vm, located, path = self.value_map_specs[name]
        for key, value in vm.values.items():
            if value is None:
                continue
            try:
                kernels.scalar_for(value, dtype)
            except ValueError:
                self.issues.append(
                    located.issue(
                        (*path, "values", key),
                        f"value map {name!r} maps {key!r} to {value!r}, "
                        f"not a valid {target.type} for {target.name}",
                        f"write a value of type {target.type}",
                    )
                )

    def _rule(self, path: YamlPath, rule: Rule, plans: dict[str, FieldPlan]) -> RulePlan | None:
        cond = rule.reject_if
        plan = plans.get(cond.field)
        if plan is None:
            self.issue(
                (*path, "reject_if", "field"),
                f"rule tests {cond.field!r}, which this template does not map",
                f"use one of: {', '.join(plans)}{did_you_mean(cond.field, list(plans))}",
            )
            return None
        tests: list[Callable[[pa.Array], pa.Array]] = []
        for op in sorted(cond.model_fields_set - {"field"}):
            value = getattr(cond, op)
            op_path = (*path, "reject_if", "in" if op == "in_" else op)
            made = self._test(op_path, op, value, plan)
            if made is not None:
                tests.append(made)
        column = cond.field

        def test(columns: dict[str, pa.Array]) -> pa.BooleanArray:
            hit = tests[0](columns[column])
            for more in tests[1:]:
                hit = pc.and_(hit, more(columns[column]))
            return hit

        return RulePlan(rule.reason, test) if tests else None

    def _test(
        self, path: YamlPath, op: str, value: Any, plan: FieldPlan
    ) -> Callable[[pa.Array], pa.Array] | None:
        if op == "is_null":
            return (lambda a: pc.is_null(a)) if value else (lambda a: pc.is_valid(a))
        if op in ("matches", "not_matches"):
            try:
                pc.match_substring_regex(pa.array([""], pa.string()), value)
            except pa.ArrowInvalid as exc:
                self.issue(path, f"bad regular expression: {exc}", "fix the pattern (RE2 syntax)")
                return None

            def matcher(a: pa.Array) -> pa.Array:
                found = pc.match_substring_regex(pc.cast(a, pa.string()), value)
                return found if op == "matches" else pc.invert(found)

            return matcher
        try:
            if op in ("in_", "not_in"):
                members = pa.array([kernels.scalar_for(v, plan.dtype).as_py() for v in value], plan.dtype)
                if op == "in_":
                    return lambda a: pc.is_in(a, value_set=members)
                return lambda a: pc.invert(pc.is_in(a, value_set=members))
            bound = kernels.scalar_for(value, plan.dtype)
        except ValueError:
            self.issue(
                path,
                f"{value!r} is not a valid {plan.type_name} for {plan.target}",
                f"write a value of type {plan.type_name}",
            )
            return None
        compare = {
            "eq": pc.equal,
            "ne": pc.not_equal,
            "lt": pc.less,
            "le": pc.less_equal,
            "gt": pc.greater,
            "ge": pc.greater_equal,
        }[op]
        return lambda a: compare(a, bound)


def _compile_value_map(
    name: str, vm: ValueMapSpec, located: LocatedYaml, path: YamlPath, issues: list[TemplateIssue]
) -> kernels.ValueMap:
    keys: list[str] = []
    seen: dict[str, str] = {}
    for key in vm.values:
        probe = key.lower() if vm.ignore_case else key
        if probe in seen:
            issues.append(
                located.issue(
                    (*path, "values", key),
                    f"value map {name!r} has {key!r} and {seen[probe]!r}, equal when case is ignored",
                    "keep one of the two entries",
                )
            )
        seen[probe] = key
        keys.append(probe)
    if vm.on_missing == "default" and vm.default is None:
        issues.append(
            located.issue(
                path, f"value map {name!r} has on_missing: default but no default", "add `default:`"
            )
        )
    return kernels.ValueMap(
        name=name,
        file=located.file,
        keys=pa.array(keys, pa.string()),
        values=pa.array([_text(v) for v in vm.values.values()], pa.string()),
        ignore_case=vm.ignore_case,
        on_missing=vm.on_missing,
        default=_text(vm.default),
        reason=vm.reason,
    )


def _plain(func: Callable[..., pa.Array], **kwargs: Any) -> TextStep:
    """Wrap a kernel that cannot fail as a text step."""
    return lambda a: (func(a, **kwargs), None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _narrower_decimal(declared: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a declared decimal fits the target's exactly (fewer or as many digits on both sides
    of the point). Templates of earlier releases declared the measures as decimal(10,3) and
    decimal(10,2); they keep working, and the value is read at the target's precision."""
    return (
        pa.types.is_decimal(declared)
        and pa.types.is_decimal(expected)
        and declared.scale <= expected.scale
        and declared.precision - declared.scale <= expected.precision - expected.scale
    )
