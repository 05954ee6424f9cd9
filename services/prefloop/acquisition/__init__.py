"""Acquisition: every selection rule, vectorised over prompts, behind one registry.

``select(name, inputs, rng, **params)`` is the one entry point; ``rule_names()`` lists what
exists. See ``base.py`` for the contract and each rule module for its paper.
"""

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.registry import check_params, get_rule, rule_names, select

__all__ = [
    "AcquisitionError",
    "AcquisitionInput",
    "Selection",
    "check_params",
    "get_rule",
    "rule_names",
    "select",
]
