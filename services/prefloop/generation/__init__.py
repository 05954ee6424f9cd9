"""Generation: fill each prompt's pool of candidate responses.

Backends implement :class:`~prefloop.generation.base.ResponseGenerator`
(``generate(items, *, seed) -> items``):

- :class:`~prefloop.generation.precomputed.PrecomputedGenerator`: responses are already stored;
- :class:`~prefloop.generation.transformers_backend.TransformersGenerator`: local causal LMs;
- :class:`~prefloop.generation.vllm_backend.VLLMGenerator`: vLLM (``pip install prefloop[vllm]``).

The transformers and vLLM backends are imported from their modules, so that importing this
package never loads torch or vLLM.
"""

from prefloop.generation.base import GenerationError, ResponseGenerator, sample_seed
from prefloop.generation.precomputed import PrecomputedGenerator

__all__ = ["GenerationError", "PrecomputedGenerator", "ResponseGenerator", "sample_seed"]
