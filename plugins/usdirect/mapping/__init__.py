"""Mapping templates: YAML per operation, validated on load, applied as vectorised Arrow transforms.

Usage::

    from usdirect.mapping import load_template
    template = load_template("include/mappings/inventory.yaml")
    result = template.map_batch(record_batch)          # feed batches (all-text columns)
    result = template.map_records(fulfillment_requests)  # JSON sources
    result.mapped, result.rejects, result.children
"""

from usdirect.mapping.errors import RejectShareExceededError, TemplateError, TemplateIssue
from usdirect.mapping.rejects import REJECTS_SCHEMA, check_reject_share
from usdirect.mapping.template import MappingResult, Template, load_template

__all__ = [
    "REJECTS_SCHEMA",
    "MappingResult",
    "RejectShareExceededError",
    "Template",
    "TemplateError",
    "TemplateIssue",
    "check_reject_share",
    "load_template",
]
