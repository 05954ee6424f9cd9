"""Identical texts are never paired: the acquisition view of a batch without duplicate answers.

Two models sometimes give byte-identical answers (about one AlpacaEval prompt in eleven has such
a duplicate). A pair of identical texts carries no preference: the judge can only call it a tie,
and the judge call is wasted. Before acquisition the engine therefore masks every response whose
text repeats an earlier response of the same prompt (the first occurrence stays), and leaves out
of the acquisition the prompts left with fewer than two distinct texts. The reward model still
scores every response; only what the rule may pick changes. Both counts go to the round metrics
(``identical_responses_masked``, ``prompts_without_distinct_pair``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from prefloop.acquisition.base import AcquisitionInput
from prefloop.data.records import PromptItem


def identical_text_mask(items: list[PromptItem], mask: np.ndarray) -> np.ndarray:
    """(P, N) True where a response's text equals an earlier response's text of its prompt.

    Why: the first occurrence is kept so that every distinct text stays selectable once.
    """
    repeated = np.zeros(mask.shape, dtype=bool)
    for p, item in enumerate(items):
        seen: set[str] = set()
        for n, response in enumerate(item.responses):
            if response.text in seen:
                repeated[p, n] = True
            seen.add(response.text)
    return repeated & mask


def restrict_rows(inputs: AcquisitionInput, rows: np.ndarray, mask: np.ndarray) -> AcquisitionInput:
    """The acquisition input of prompt ``rows`` only, with ``mask`` (already row-restricted).

    Why: rules require two selectable responses on every prompt they see, so prompts without a
    distinct pair are left out instead of being handed to the rule.
    """
    fields = {
        f.name: getattr(inputs, f.name)[rows]
        for f in dataclasses.fields(inputs)
        if f.name != "mask" and getattr(inputs, f.name) is not None
    }
    return dataclasses.replace(inputs, mask=mask, **fields)
