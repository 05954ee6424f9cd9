"""The base class of every model of the ActiveRun spec.

Kept apart from :mod:`prefloop.spec` so the spec can be split into modules (the cluster-only
models live in :mod:`prefloop.spec_cluster`) without an import cycle. Every spec model is
camelCase in YAML, snake_case in Python, forbids unknown fields (a typo is an error naming the
field), validates its defaults, takes its field docs from attribute docstrings (they become the
CRD's descriptions and docs/spec.md) and is immutable.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """A part of the ActiveRun spec (camelCase aliases, extra fields forbidden, frozen)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
        frozen=True,
    )
