"""Generate candidate responses through an OpenAI-compatible chat endpoint.

Any server that speaks ``POST /v1/chat/completions`` can be a model of the pool: a vLLM or TGI
server on the cluster, or a hosted API. :class:`OpenAIModel` sends every prompt of a batch as
one chat request (its UltraFeedback system prompt first, when enabled), concurrently up to the
endpoint's ``maxConcurrency``, through :class:`~prefloop.llm.openai_http.OpenAIChatClient`
(timeouts, bounded retries with full jitter, ``Retry-After``). Each request carries the
answer's own seed (:meth:`~prefloop.generation.base.Sampling.request_seed`), which vLLM and TGI
honour, so greedy or seeded answers are reproducible.

A request that still fails after its retries gives that prompt no response from this model (a
recorded :class:`~prefloop.generation.base.GenerationFailure` with the client's failure kind),
never a stand-in text. Token counts are the server's ``usage``.
"""

from __future__ import annotations

from prefloop.data.records import PromptItem
from prefloop.generation.base import Answer, Generated, GenerationFailure, Sampling
from prefloop.generation.system_prompts import SystemPromptPolicy
from prefloop.llm import ChatRequest, ChatResult, HttpEndpointConfig, OpenAIChatClient


class OpenAIModel:
    """One model of a pool behind an OpenAI-compatible endpoint (a ``ModelBackend``).

    Args:
        name: recorded as ``Response.model``.
        endpoint: the server, its model name, limits and where its API key is.
        sampling: this model's length bound, temperature, nucleus mass and optional seed.
        system_prompts: which system prompt the model gets per prompt.
        client: the HTTP client (built from ``endpoint`` by default).
    """

    def __init__(
        self,
        name: str,
        endpoint: HttpEndpointConfig,
        *,
        sampling: Sampling | None = None,
        system_prompts: SystemPromptPolicy | None = None,
        client: OpenAIChatClient | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"model names must be non-empty strings, got {name!r}")
        self.name = name
        self.endpoint = endpoint
        self.sampling = sampling or Sampling()
        self.system_prompts = system_prompts or SystemPromptPolicy()
        self.client = client or OpenAIChatClient(endpoint)

    def __repr__(self) -> str:
        return f"OpenAIModel(name={self.name!r}, endpoint={self.endpoint.base_url!r})"

    def requests(self, items: list[PromptItem], seed: int) -> list[tuple[ChatRequest, str | None]]:
        """One chat request per item (in order) and the principle of its system prompt."""
        out = []
        for item in items:
            messages, principle = self.system_prompts.messages(seed, self.name, item)
            request = ChatRequest(
                messages=tuple(messages),
                max_tokens=self.sampling.max_new_tokens,
                temperature=float(self.sampling.temperature),
                top_p=float(self.sampling.top_p),
                seed=self.sampling.request_seed(seed, self.name, item.prompt_id),
            )
            out.append((request, principle))
        return out

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        """Every prompt's answer, or its failure after the client's retries."""
        planned = self.requests(items, seed)
        outcomes = self.client.complete_batch([request for request, _ in planned])
        answers: dict[str, Answer] = {}
        for item, (_, principle), outcome in zip(items, planned, outcomes, strict=True):
            if isinstance(outcome, ChatResult):
                answers[item.prompt_id] = Generated(
                    outcome.choices[0].text.strip(),
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    principle=principle,
                )
            else:
                answers[item.prompt_id] = GenerationFailure(
                    outcome.kind,
                    f"model {self.name!r}, prompt {item.prompt_id!r}: {outcome.message}",
                )
        return answers
