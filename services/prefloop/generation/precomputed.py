"""The research-setting generator: responses are already in the data, so nothing is generated.

Benchmarks such as the shipped AlpacaEval pool (16 scored answers per prompt) or
ActiveUltraFeedback's annotated UltraFeedback sets (https://arxiv.org/abs/2603.09692) come with
every candidate answer precomputed; the loop only decides which pair to reveal. This backend
returns the items unchanged after checking that each has a pool to choose from.
"""

from __future__ import annotations

from prefloop.data.records import PromptItem
from prefloop.generation.base import GenerationError, check_seed

MIN_RESPONSES = 2


class PrecomputedGenerator:
    """A :class:`~prefloop.generation.base.ResponseGenerator` returning the stored responses."""

    name = "precomputed"

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        """The items unchanged; the seed is accepted for interface compatibility.

        Why: the engine calls every backend the same way; here a prompt without at least two
        stored answers cannot yield a pair, and that is reported before any judge budget is spent.

        Raises:
            GenerationError: an item has fewer than 2 responses (the message names the prompt).
        """
        check_seed(seed)
        short = [it for it in items if len(it.responses) < MIN_RESPONSES]
        if short:
            shown = ", ".join(f"{it.prompt_id!r} ({len(it.responses)})" for it in short[:10])
            more = f" and {len(short) - 10} more" if len(short) > 10 else ""
            raise GenerationError(
                f"{len(short)} prompt(s) have fewer than {MIN_RESPONSES} stored responses, so no "
                f"pair can be formed: {shown}{more}; load a file with responses or use a live "
                "generator (TransformersGenerator / VLLMGenerator)"
            )
        return list(items)
