"""The label-efficiency bench's pool-scope options: method labels and per-method parameters.

A bench method is a registry rule, optionally with ``@pool``: ``drts@pool`` runs DRTS with
``acquisition.scope: pool`` (docs/methods.md, "Pool scope"), so one bench compares a rule in
both scopes against the same Random reference. ``--scope pool`` puts every listed rule but
Random in pool scope, ``--scope both`` runs each in both scopes. Random stays in batch scope: its
prompts are uniformly random in either scope (its pool value is a seeded uniform draw), and the
report's reference is the rule named ``random``.

``+src`` (``delta_ucb+src``, ``drts+src@pool``) runs the rule with
``rewardModel.sourceModels.enabled: true`` (docs/methods.md, "Source-model strengths"); a label
without it keeps the bench manifest's setting (off). A ``#tag`` at the end names a variant
(``delta_ucb+src#w4``) whose manifest fields ``--set 'delta_ucb+src#w4:PATH=VALUE'`` changes, so
one bench can sweep a setting (PATH below ``spec.``, as in a manifest).
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

POOL_SUFFIX = "@pool"
SOURCE_SUFFIX = "+src"
TAG_SEPARATOR = "#"
REFERENCE = "random"
BenchScope = Literal["batch", "pool", "both"]


class ScopeOptionError(ValueError):
    """A bench method label or parameter list that cannot be read."""


def uses_source_models(label: str) -> bool:
    """``drts+src`` (or ``drts+src@pool``) runs with ``rewardModel.sourceModels.enabled``."""
    return SOURCE_SUFFIX in label


def split_label(label: str) -> tuple[str, str]:
    """``drts@pool`` -> (``drts``, ``pool``); ``drts`` -> (``drts``, ``batch``); a ``+src``
    before the scope and a ``#tag`` at the end are not part of the rule's name."""
    label = label.split(TAG_SEPARATOR, 1)[0].replace(SOURCE_SUFFIX, "", 1)
    if label.endswith(POOL_SUFFIX):
        return label[: -len(POOL_SUFFIX)], "pool"
    if "@" in label:
        raise ScopeOptionError(f"--methods: {label!r}: the only scope suffix is {POOL_SUFFIX!r}")
    return label, "batch"


def with_scope(labels: list[str], scope: BenchScope) -> list[str]:
    """The bench's method labels for ``--scope``: every rule but Random in pool scope
    (``pool``), or in both scopes (``both``); labels already suffixed are kept."""
    if scope == "batch":
        return labels
    out: list[str] = []
    for label in labels:
        rule, own = split_label(label)
        if own == "pool" or rule == REFERENCE:
            out.append(label)
            continue
        out.extend([label, label + POOL_SUFFIX] if scope == "both" else [label + POOL_SUFFIX])
    return list(dict.fromkeys(out))


def parse_method_params(text: str | None) -> dict[str, dict[str, Any]]:
    """``--params 'drts:beta=2,delta_ucb@pool:beta=0.5'`` -> {label or rule: {name: value}}.

    Why: the sensitivity study sweeps one rule's parameter without touching the others'.
    Values are read as YAML scalars (``2`` an int, ``0.5`` a float, ``true`` a bool).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        key, sep, assignment = item.partition(":")
        name, eq, value = assignment.partition("=")
        if not sep or not eq or not key or not name:
            raise ScopeOptionError(f"--params: {item!r} is not METHOD:NAME=VALUE")
        out.setdefault(key.strip(), {})[name.strip()] = yaml.safe_load(value)
    return out


def parse_method_overrides(text: str | None) -> dict[str, list[str]]:
    """``--set 'delta_ucb+src#w4:rewardModel.sourceModels.weight=4,...'`` -> {label: [PATH=VALUE]}.

    Why: a sensitivity study runs one rule with several values of a manifest field, each as its
    own labelled method, against the same Random reference.
    """
    out: dict[str, list[str]] = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        label, sep, assignment = item.partition(":")
        if not sep or "=" not in assignment or not label.strip():
            raise ScopeOptionError(f"--set: {item!r} is not METHOD:PATH=VALUE")
        out.setdefault(label.strip(), []).append(assignment.strip())
    return out


def params_for(label: str, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A label's parameters: the rule's (``drts:...``) overridden by the label's own."""
    rule, _ = split_label(label)
    return {**params.get(rule, {}), **params.get(label, {})}
