"""Policy-in-the-loop methods in the label-efficiency bench: ``policy:adpo``, ``policy:ae_dpo``...

The rules ADPO, AE-DPO, AE-Borda and US-DPO were published with a *policy* in the loop (a causal
LM trained by DPO whose implicit reward and MC-dropout spread drive the selection; seeds_001_004
sections 1-2). In the bench, ``policy:<rule>`` runs that rule with ``trainer.kind: policy``
(docs/training.md) and the policy given by ``--policy``: a local Hugging Face directory, or
``tiny`` for a tiny random Llama built from a config (:mod:`prefloop.posttrain.tiny_lm`) with a
tokenizer trained on the bench data, so the curves sit beside the reward-head rules' on a CPU.
The bare rule names keep meaning the rule on the reward head.

Everything else is the bench's usual protocol: the same shuffles, budgets, judge and downstream
probe (on the dataset the policy loop produced); the held-out accuracy is the policy's
implicit-reward pairwise accuracy (:mod:`prefloop.reward.policy_evaluation`). ADPO spends judge
calls only on the pairs it is unsure about; its **query rate** per round, queries / (queries +
pseudo-labels), is reported in ``query_rate.csv`` and in ``summary.md``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "policy:"
RULES = ("adpo", "ae_dpo", "ae_borda", "us_dpo")
"""The rules published with a policy in the loop."""
TINY = "tiny"
TINY_TEXTS = 2000
"""Texts of the bench data the tiny policy's tokenizer is trained on (the first ones)."""


class PolicyMethodError(ValueError):
    """A ``policy:`` method the bench cannot run (unknown rule, no or a bad ``--policy``)."""


def is_policy_method(method: str) -> bool:
    """True for ``policy:<rule>``."""
    return method.startswith(PREFIX)


def policy_rule(method: str) -> str:
    """The acquisition rule of ``policy:<rule>``, checked against the policy rules."""
    rule = method[len(PREFIX) :]
    if rule not in RULES:
        raise PolicyMethodError(
            f"--methods: {method!r}: the policy methods are " + ", ".join(PREFIX + r for r in RULES)
        )
    return rule


def method_slug(method: str) -> str:
    """The method as a run name / directory part (``policy:ae_dpo`` -> ``policy-ae-dpo``)."""
    return re.sub(r"[^a-z0-9@]+", "-", method.lower()).strip("-")


def resolve_policy(policy: str | None, texts: list[str], out: Path) -> Path:
    """The policy directory for ``--policy``: ``tiny`` builds one under ``out``, else a path.

    Why: the bench must say before the first run that a policy method has no usable policy,
    rather than fail in the middle of the seeds.
    """
    if policy is None:
        raise PolicyMethodError(
            "--methods: policy:* methods need --policy PATH (a local causal-LM directory) or "
            "--policy tiny"
        )
    if policy == TINY:
        directory = out / "tiny-policy"
        if not (directory / "config.json").exists():
            from prefloop.posttrain.tiny_lm import save_tiny_causal_lm

            directory.mkdir(parents=True, exist_ok=True)
            save_tiny_causal_lm(directory, texts[:TINY_TEXTS] or ["a"], seed=0)
        return directory
    path = Path(policy)
    if not (path / "config.json").is_file():
        raise PolicyMethodError(
            f"--policy: {policy!r} is not a Hugging Face model directory (no config.json); give "
            "a local causal-LM directory or 'tiny'"
        )
    return path


def apply_policy(
    spec: dict[str, Any], method: str, policy_dir: Path, adpo_gamma: float
) -> dict[str, Any]:
    """The bench manifest's ``spec`` turned into a policy-in-the-loop run of ``method``."""
    rule = policy_rule(method)
    spec["acquisition"]["method"] = rule
    if rule == "adpo":
        spec["acquisition"]["params"] = {"gamma": adpo_gamma, **spec["acquisition"]["params"]}
    spec["trainer"]["kind"] = "policy"
    spec["trainer"]["policy"] = {"model": str(policy_dir.resolve())}
    return spec


def query_rate_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method that pseudo-labelled, per round: queries, pseudo-labels and the query rate.

    Why: ADPO's saving is the share of candidate pairs it did not ask the judge about; the
    paper's x-axis is queries, so the rate per round is what to read beside its curve.
    """
    by: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        by[(p["method"], int(p["round"]))].append(p)
    labelled = {m for (m, _), pts in by.items() if any(q.get("pseudo_labels", 0) for q in pts)}
    rows = []
    for (method, r), pts in sorted(by.items()):
        if method not in labelled:
            continue
        q = np.array([float(p["queries"]) for p in pts])
        s = np.array([float(p["pseudo_labels"]) for p in pts])
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = q / (q + s)
        rows.append(
            {
                "method": method,
                "round": r,
                "seeds": len(pts),
                "queries": float(q.mean()),
                "pseudo_labels": float(s.mean()),
                "query_rate": float(np.nanmean(rate)) if np.isfinite(rate).any() else np.nan,
            }
        )
    return rows


def query_rate_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The query-rate table as markdown lines (none without a pseudo-labelling method)."""
    if not rows:
        return []
    lines = [
        "",
        "## Query rate per round (methods with pseudo-labels)",
        "",
        "queries / (queries + pseudo-labels) of each round, mean over seeds",
        "",
        "| method | round | seeds | queries | pseudo-labels | query rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["query_rate"]
        lines.append(
            f"| {r['method']} | {r['round']} | {r['seeds']} | {r['queries']:.1f} | "
            f"{r['pseudo_labels']:.1f} | {'n/a' if not np.isfinite(rate) else f'{rate:.3f}'} |"
        )
    return lines
