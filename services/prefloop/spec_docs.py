"""Render the ActiveRun field reference (docs/spec.md) from the typed spec itself.

The reference is generated, like the CRD, so that the docs cannot drift from the code; a test
compares the committed file with ``render_spec_reference()``.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from prefloop.spec import ActiveRun

HEADER = """# ActiveRun reference

Generated from `services/prefloop/spec.py` (`python -m prefloop.spec_docs > docs/spec.md`).
YAML keys are camelCase; every field is optional and shows its default. Unknown keys are errors.

"""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "map"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _section(
    model: type[BaseModel], path: str, out: list[str], seen: dict[type, str] | None = None
) -> None:
    seen = {} if seen is None else seen
    if model in seen:  # e.g. the five roles: document the model once, point to it after
        out.append(f"## `{path}`\n\nSame fields as [`{seen[model]}`](#{_anchor(seen[model])}).\n")
        return
    seen[model] = path
    out.append(f"## `{path}`\n\n{(model.__doc__ or '').strip()}\n")
    out.append("| field | type | default | description |\n|---|---|---|---|")
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or to_camel(name)
        tp = field.annotation
        default = field.default
        if isinstance(default, BaseModel):
            default_txt = "(see below)"
        elif field.is_required():
            default_txt = "required"
        else:
            default_txt = f"`{json.dumps(default)}`"
        desc = " ".join((field.description or "").split())
        out.append(f"| `{key}` | {_type_name(tp)} | {default_txt} | {desc} |")
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            nested.append((tp, f"{path}.{key}"))
        for arg in typing.get_args(tp):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                nested.append((arg, f"{path}.{key}[]"))
    out.append("")
    for sub, sub_path in nested:
        _section(sub, sub_path, out, seen)


def _anchor(path: str) -> str:
    """The GitHub anchor of the heading `` `path` ``."""
    return "".join(c for c in path.lower() if c.isalnum() or c in "-_")


def render_spec_reference() -> str:
    """The Markdown field reference of the whole manifest."""
    out = [HEADER]
    _section(ActiveRun, "ActiveRun", out)
    return "\n".join(out).rstrip() + "\n"


METHODS_HEADER = """# Acquisition rules

Generated from the registry (`python -m prefloop.spec_docs methods > docs/methods-table.md`).
Set one with `spec.acquisition.method` and its parameters with `spec.acquisition.params`.
*per_prompt* rules pick `pairsPerPrompt` pairs for every prompt; *batch* rules pick up to
`batchSize x pairsPerPrompt` pairs across the batch (`max_pairs`) and may skip prompts.

| method | kind | needs | parameters (defaults) | what it picks | paper |
|---|---|---|---|---|---|
"""


def render_methods_reference() -> str:
    """The Markdown table of every registered acquisition rule."""
    from prefloop.acquisition.registry import get_rule, rule_names

    rows = []
    for name in rule_names():
        info = get_rule(name)
        params = ", ".join(f"`{k}={v!r}`" for k, v in info.parameters().items()) or "-"
        needs = ", ".join(sorted(info.needs)) or "-"
        rows.append(
            f"| `{name}` | {info.kind} | {needs} | {params} | {info.summary} | {info.paper} |"
        )
    return METHODS_HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    wants_methods = sys.argv[1:] == ["methods"]
    print(render_methods_reference() if wants_methods else render_spec_reference(), end="")
