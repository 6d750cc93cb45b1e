"""Mapping templates: YAML per operation, validated on load, applied as vectorised Arrow transforms.

Usage::

    from usdirect.mapping import load_template
    template = load_template("include/mappings/inventory.yaml")
    result = template.map_batch(record_batch)          # feed batches (all-text columns)
    result = template.map_records(fulfillment_requests)  # JSON sources
    result.mapped, result.rejects, result.children

The names below are imported on first use: DAG files check settings and templates at parse time
through ``usdirect.mapping.errors`` / ``yaml_lines`` / ``spec_check``, which must not pull in Arrow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from usdirect.domain.rejects import REJECT_SCHEMA as REJECT_SCHEMA
    from usdirect.mapping.errors import RejectShareExceededError as RejectShareExceededError
    from usdirect.mapping.errors import TemplateError as TemplateError
    from usdirect.mapping.errors import TemplateIssue as TemplateIssue
    from usdirect.mapping.rejects import check_reject_share as check_reject_share
    from usdirect.mapping.template import MappingResult as MappingResult
    from usdirect.mapping.template import Template as Template
    from usdirect.mapping.template import load_template as load_template

_HOME = {
    "REJECT_SCHEMA": "usdirect.domain.rejects",
    "MappingResult": "usdirect.mapping.template",
    "RejectShareExceededError": "usdirect.mapping.errors",
    "Template": "usdirect.mapping.template",
    "TemplateError": "usdirect.mapping.errors",
    "TemplateIssue": "usdirect.mapping.errors",
    "check_reject_share": "usdirect.mapping.rejects",
    "load_template": "usdirect.mapping.template",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'usdirect.mapping' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
