"""The YAML shape of a mapping template, as pydantic models (structure only).

Meaning that depends on the operation (which target names exist, which are required, their
types) is checked afterwards in `validate.py`, so that every error can name a line and a fix.
"""

from __future__ import annotations

import codecs
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Scalar = str | int | float | bool | None
RoundMode = Literal[
    "half_towards_infinity", "half_to_even", "half_up", "half_down", "down", "up", "towards_zero"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReplaceArgs(_Strict):
    """Regular-expression replace (RE2 syntax), e.g. {pattern: "[^0-9]", with: ""}."""

    pattern: str
    with_: str = Field("", alias="with")


class RoundArgs(_Strict):
    digits: int = Field(ge=0, le=18)
    mode: RoundMode = "half_towards_infinity"


class ClampArgs(_Strict):
    min: Decimal | None = None
    max: Decimal | None = None


# Transforms that work on the source text, before the value is read as its type.
TEXT_STEPS = (
    "strip",
    "case",
    "null_if",
    "remove_prefix",
    "remove_suffix",
    "prefix",
    "suffix",
    "replace",
    "currency",
    "capped",
    "map",
)
# Transforms that work on the typed number, after the cast.
NUMBER_STEPS = ("round", "clamp")


class Step(_Strict):
    """One transform: a bare name (`strip`) or a one-key mapping (`prefix: "USD-"`)."""

    strip: bool | None = None
    case: Literal["lower", "upper", "title"] | None = None
    null_if: list[str] | None = None
    remove_prefix: str | None = None
    remove_suffix: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    replace: ReplaceArgs | None = None
    currency: bool | None = None
    capped: bool | None = None
    map: str | None = None
    round: int | RoundArgs | None = None
    clamp: ClampArgs | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {data: True}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        if len(self.model_fields_set) != 1:
            raise ValueError('a transform is one name, e.g. `- strip` or `- prefix: "USD-"`')
        return self

    @property
    def name(self) -> str:
        return next(iter(self.model_fields_set))

    @property
    def arg(self) -> Any:
        return getattr(self, self.name)


class FieldSpec(_Strict):
    """How one target field is produced from the source."""

    description: str | None = None
    source: str | None = None
    sources: list[str] | None = None
    join: str = " "
    format: str | None = None
    constant: Scalar = None
    type: str | None = None
    required: bool | None = None
    default: Scalar = None
    transforms: list[Step] = Field(default_factory=list)


class ValueMapSpec(_Strict):
    """A lookup table from source values to target values."""

    description: str | None = None
    values: dict[str, Scalar]
    ignore_case: bool = False
    on_missing: Literal["reject", "keep", "null", "default"] = "reject"
    default: Scalar = None
    reason: str | None = None

    @field_validator("on_missing", mode="before")
    @classmethod
    def _unquoted_null(cls, value: Any) -> Any:
        # `on_missing: null` unquoted is YAML's null; it means the "null" choice.
        return "null" if value is None else value


class Condition(_Strict):
    """A test on one mapped (typed) target field; all given tests must hold."""

    field: str
    is_null: bool | None = None
    eq: Scalar = None
    ne: Scalar = None
    lt: Scalar = None
    le: Scalar = None
    gt: Scalar = None
    ge: Scalar = None
    in_: list[Scalar] | None = Field(None, alias="in")
    not_in: list[Scalar] | None = None
    matches: str | None = None
    not_matches: str | None = None

    @model_validator(mode="after")
    def _has_test(self) -> Condition:
        if len(self.model_fields_set - {"field"}) == 0:
            raise ValueError("a condition needs a test such as `lt: 0` or `is_null: true`")
        return self


class Rule(_Strict):
    """Reject a row when `reject_if` holds, with `reason` as the rejects' reason."""

    name: str | None = None
    reject_if: Condition
    reason: str


class Switches(_Strict):
    """Flxpoint's Get Inventory switches: which groups of target fields a run may write."""

    sync_inventory: bool = True
    sync_pricing: bool = True
    sync_quantity: bool = True


class ChildSpec(_Strict):
    """A list inside each source record (order items, invoice lines) mapped to its own table."""

    description: str | None = None
    source: str
    fields: dict[str, FieldSpec]
    rules: list[Rule] = Field(default_factory=list)


class TemplateSpec(_Strict):
    """A whole template file."""

    operation: Literal["inventory", "orders", "shipments", "invoices"]
    description: str | None = None
    # How the CSV feed's bytes are text (a Python codec name); utf-8 also reads a byte-order mark.
    encoding: str = "utf-8"
    value_map_files: list[str] = Field(default_factory=list)
    value_maps: dict[str, ValueMapSpec] = Field(default_factory=dict)
    switches: Switches | None = None
    fields: dict[str, FieldSpec]
    children: dict[str, ChildSpec] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str, info: ValidationInfo) -> str:
        operation = info.data.get("operation")
        if operation is not None and operation != "inventory":
            raise ValueError(
                f"`encoding` applies to the inventory feed (CSV); {operation} data is JSON, always "
                "UTF-8: remove the `encoding:` line"
            )
        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}: use a Python codec name such as utf-8 (the default), "
                "cp1252 (Windows/Excel exports) or latin-1"
            ) from None


class ValueMapFile(_Strict):
    """A shared value-map file (include/mappings/value_maps.yaml)."""

    description: str | None = None
    value_maps: dict[str, ValueMapSpec]
