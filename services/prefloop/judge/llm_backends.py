"""The LLMs behind the rubric and pairwise judges: an OpenAI-compatible endpoint or a local model.

A judge hands a backend a list of conversations and a reply check; the backend returns, per
conversation and in order, a :class:`JudgeReply` (the text, the first generated position's top
log-probabilities when it has them, token counts, seconds) or a :class:`JudgeCallFailure`, and
hands each outcome to ``on_outcome`` as soon as it is known (the judge stores answers while the
rest are still in flight). A backend never raises for one bad request and never returns a reply
its check refused.

- :class:`OpenAIJudgeLLM` sends chat completions through
  :class:`~prefloop.llm.openai_http.OpenAIChatClient` (timeouts, bounded retries with full
  jitter on 429/5xx/timeouts/closed connections/malformed bodies), at most
  ``endpoint.maxConcurrency`` requests at once over one connection pool. The check runs on every
  attempt, so a reply without a readable rating is retried within the same budget
  (``endpoint.maxAttempts`` attempts, ``endpoint.retryBudgetSeconds`` seconds).
- :class:`TransformersJudgeLLM` runs a local causal LM (Hugging Face format, nothing
  downloaded): one forward pass gives the first position's log-softmax, whose top
  ``top_logprobs`` tokens play the part of the server's ``top_logprobs``; the reply text is
  decoded greedily (or sampled with a per-request seed). A local model at a fixed seed repeats
  its reply, so a refused reply fails at once instead of being retried.

Both price their tokens with the endpoint's ``pricePerMillion*Tokens`` (a local model costs 0).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from prefloop.data.records import Message, stable_id
from prefloop.generation.base import sample_seed
from prefloop.llm import ChatRequest, ChatResult, HttpEndpointConfig

Conversation = tuple[Message, ...]


@dataclass(frozen=True)
class JudgeSampling:
    """How the judge's LLM decodes: temperature (0 is greedy), nucleus mass, reply length, and
    how many first-position alternatives to ask for (0: none, the reply text is parsed)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    top_logprobs: int = 20


@dataclass(frozen=True)
class JudgeReply:
    """One accepted reply: its text, the first position's ``(token, logprob)`` alternatives
    (None when the backend gave none), token counts and wall seconds."""

    text: str
    first_top_logprobs: tuple[tuple[str, float], ...] | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class JudgeCallFailure:
    """A request that produced no accepted reply: the fault kind and a one-line message (never
    an API key)."""

    kind: str
    message: str
    seconds: float = 0.0


JudgeOutcome = JudgeReply | JudgeCallFailure
ReplyCheck = Callable[[JudgeReply], str | None]
"""Returns None to accept a reply, or why it is refused."""
OutcomeSink = Callable[[int, JudgeOutcome], None]
"""Called with (index of the conversation, its outcome) as each request ends."""


class JudgeLLM(Protocol):
    """An LLM a judge can ask (see module doc)."""

    identity: str
    """What the model is (endpoint model name or local path): part of the judge's config key."""
    chunk_size: int
    """Requests in flight at once; the judge stores its new answers every ``chunk_size``
    outcomes."""

    def complete(
        self,
        conversations: Sequence[Conversation],
        *,
        check: ReplyCheck,
        seed: int,
        on_outcome: OutcomeSink | None = None,
    ) -> list[JudgeOutcome]:
        """One outcome per conversation, in order; ``seed`` seeds sampled decoding."""
        ...

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The money estimate of these tokens."""
        ...


def conversation_seed(seed: int, conversation: Conversation) -> int:
    """The sampling seed of one judge request: from the run's judge seed and the request's
    content, so a reply does not depend on batching or on the other requests."""
    return sample_seed(seed, "judge", stable_id(json.dumps(conversation, sort_keys=True)))


def token_cost(
    endpoint: HttpEndpointConfig | None, prompt_tokens: int, completion_tokens: int
) -> float:
    """Tokens times the endpoint's prices per million (0 without an endpoint or prices).

    Why one function: judge and generation costs must be computed the same way.
    """
    if endpoint is None:
        return 0.0
    return (
        prompt_tokens * endpoint.price_per_million_input_tokens
        + completion_tokens * endpoint.price_per_million_output_tokens
    ) / 1e6


def _reply_of(result: ChatResult) -> JudgeReply:
    choice = result.choices[0]
    first = None
    if choice.logprobs:
        first = tuple(choice.logprobs[0].top_logprobs) or (
            (choice.logprobs[0].token, choice.logprobs[0].logprob),
        )
    return JudgeReply(
        text=choice.text,
        first_top_logprobs=first,
        prompt_tokens=result.prompt_tokens or 0,
        completion_tokens=result.completion_tokens or 0,
        seconds=result.seconds,
    )


class OpenAIJudgeLLM:
    """A judge LLM behind an OpenAI-compatible chat endpoint (a vLLM server, a hosted API).

    Args:
        endpoint: where the server is, its model name, limits, retries, key source and prices.
        sampling: decoding settings of every request.
        client: the HTTP client (built from ``endpoint`` by default).
    """

    def __init__(
        self, endpoint: HttpEndpointConfig, sampling: JudgeSampling, client: Any | None = None
    ) -> None:
        from prefloop.llm import OpenAIChatClient

        self.endpoint = endpoint
        self.sampling = sampling
        self.client = client or OpenAIChatClient(endpoint)
        self.identity = f"openai:{endpoint.model}"
        self.chunk_size = endpoint.max_concurrency

    def __repr__(self) -> str:
        return f"OpenAIJudgeLLM(base_url={self.endpoint.base_url!r}, model={self.endpoint.model!r})"

    def complete(
        self,
        conversations: Sequence[Conversation],
        *,
        check: ReplyCheck,
        seed: int,
        on_outcome: OutcomeSink | None = None,
    ) -> list[JudgeOutcome]:
        """Every conversation's reply or failure; refused replies are retried by the client.

        Why not one ``complete_batch`` per chunk: a chunk would wait for its slowest request and
        open a new connection pool; here every request runs as soon as a slot is free, on one
        pool, and its outcome is handed over as it ends.
        """
        s = self.sampling
        requests = [
            ChatRequest(
                messages=conv,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                seed=conversation_seed(seed, conv),
                top_logprobs=s.top_logprobs,
            )
            for conv in conversations
        ]
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._complete_all(requests, check, on_outcome))
        with ThreadPoolExecutor(1, thread_name_prefix="prefloop-judge") as pool:  # inside a loop
            return pool.submit(
                asyncio.run, self._complete_all(requests, check, on_outcome)
            ).result()

    async def _complete_all(
        self, requests: list[ChatRequest], check: ReplyCheck, on_outcome: OutcomeSink | None
    ) -> list[JudgeOutcome]:
        gate = asyncio.Semaphore(self.endpoint.max_concurrency)
        session = self.client.open_session()

        async def one(index: int, request: ChatRequest) -> JudgeOutcome:
            async with gate:
                (raw,) = await self.client.complete_many(
                    [request], check=lambda r: check(_reply_of(r)), session=session
                )
            outcome: JudgeOutcome = (
                _reply_of(raw)
                if isinstance(raw, ChatResult)
                else JudgeCallFailure(raw.kind, raw.message, raw.seconds)
            )
            if on_outcome is not None:
                on_outcome(index, outcome)
            return outcome

        try:
            return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
        finally:
            await session.close()

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Tokens times the endpoint's prices."""
        return token_cost(self.endpoint, prompt_tokens, completion_tokens)


class TransformersJudgeLLM:
    """A judge LLM run locally with Hugging Face transformers (loaded once, kept loaded).

    Args:
        path: local model directory (Hugging Face format; nothing is downloaded).
        sampling: decoding settings.
        device: torch device.
        batch_size: conversations per forward pass.
    """

    def __init__(
        self, path: str, sampling: JudgeSampling, *, device: str = "cpu", batch_size: int = 8
    ) -> None:
        self.path = path
        self.sampling = sampling
        self.device = device
        self.batch_size = batch_size
        self.identity = f"transformers:{path}"
        self.chunk_size = batch_size
        self._lm: Any = None

    def __repr__(self) -> str:
        return f"TransformersJudgeLLM(path={self.path!r}, device={self.device!r})"

    def _loaded(self) -> Any:
        if self._lm is None:
            from prefloop.generation.transformers_backend import LoadedCausalLM

            self._lm = LoadedCausalLM.load("judge", self.path, self.device)
        return self._lm

    def complete(
        self,
        conversations: Sequence[Conversation],
        *,
        check: ReplyCheck,
        seed: int,
        on_outcome: OutcomeSink | None = None,
    ) -> list[JudgeOutcome]:
        """Every conversation's reply, or ``invalid_reply`` when the check refuses it."""
        out: list[JudgeOutcome] = []
        for start in range(0, len(conversations), self.batch_size):
            batch = self._batch(conversations[start : start + self.batch_size], check, seed)
            for k, outcome in enumerate(batch):
                if on_outcome is not None:
                    on_outcome(start + k, outcome)
            out.extend(batch)
        return out

    def _batch(
        self, conversations: Sequence[Conversation], check: ReplyCheck, seed: int
    ) -> list[JudgeOutcome]:
        import torch

        from prefloop.generation.base import Sampling
        from prefloop.generation.transformers_backend import render_chat

        lm = self._loaded()
        t0 = time.perf_counter()
        rendered = [render_chat(list(conv), lm.tokenizer) for conv in conversations]
        texts = [text for text, _ in rendered]
        add_special = rendered[0][1]
        encoded = lm.tokenizer(
            texts, add_special_tokens=add_special, padding=True, return_tensors="pt"
        )
        mask = encoded["attention_mask"].to(lm.device)
        with torch.inference_mode():
            logits = lm.model(
                input_ids=encoded["input_ids"].to(lm.device),
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),  # left padding, as generate does
            ).logits[:, -1, :]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        k = min(max(self.sampling.top_logprobs, 1), logprobs.shape[-1])
        top = torch.topk(logprobs, k, dim=-1)
        s = self.sampling
        sampling = Sampling(max_new_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p)
        seeds = [conversation_seed(seed, conv) for conv in conversations]
        generated = lm.generate(texts, add_special, seeds, sampling)
        per_request = (time.perf_counter() - t0) / len(texts)
        out: list[JudgeOutcome] = []
        for row, (text, prompt_tokens, completion_tokens) in enumerate(generated):
            first = None
            if s.top_logprobs > 0:
                first = tuple(
                    (lm.tokenizer.decode([int(t)]), float(v))
                    for v, t in zip(top.values[row], top.indices[row], strict=True)
                )
            reply = JudgeReply(text, first, prompt_tokens, completion_tokens, per_request)
            problem = check(reply)
            out.append(
                reply
                if problem is None
                else JudgeCallFailure("invalid_reply", f"{self.identity}: {problem}", per_request)
            )
        return out

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """A local model is not billed per token."""
        return 0.0
