"""Summed response log-probabilities log pi(y | x) under a causal LM, batched and padded.

DPO's implicit reward is r(x, y) = beta (log pi(y|x) - log pi_ref(y|x)) with log pi the **sum**
of the response tokens' log-probs (seeds_001_004 notation). Prompts are rendered with the
tokenizer's chat template and ``add_generation_prompt=True``; the response tokens are those the
full conversation adds after that prefix, which is how TRL's DPOTrainer splits a
conversational pair. A tokenizer without a chat template gets the plain concatenation.

Used by the post-training tests (the DPO loss on the training pairs before and after an epoch)
and by the policy in the loop (the reward role's log-probs and their MC-dropout samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _messages(prompt: Any) -> list[dict[str, str]]:
    """A prompt as a message list (a bare string is one user turn)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def _response_text(response: Any) -> str:
    """The assistant text of a response (a string or a one-message list)."""
    if isinstance(response, str):
        return response
    return "".join(str(m["content"]) for m in response)


def _ids(tokenizer: Any, out: Any) -> list[int]:
    """Token ids from ``apply_chat_template``'s output (a list, or a BatchEncoding in 5.x)."""
    if isinstance(out, list):
        return [int(x) for x in out]
    return [int(x) for x in out["input_ids"]]


def encode_pair(tokenizer: Any, prompt: Any, response: Any) -> tuple[list[int], int]:
    """Token ids of prompt + response and the number of prompt tokens.

    Why: one rendering rule for every log-prob prefloop computes, so the loop's implicit reward
    and the trainer's loss score the same tokens.
    """
    messages = _messages(prompt)
    text = _response_text(response)
    if getattr(tokenizer, "chat_template", None):
        head = _ids(tokenizer, tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        full = _ids(
            tokenizer,
            tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": text}]),
        )
        if full[: len(head)] != head:  # a template that rewrites the prefix: tokenise apart
            full = head + tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        head = tokenizer("\n".join(m["content"] for m in messages) + "\n")["input_ids"]
        full = head + tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            full.append(int(tokenizer.eos_token_id))
    return full, len(head)


def batch_tensors(
    tokenizer: Any,
    prompts: Sequence[Any],
    responses: Sequence[Any],
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention_mask, response_mask), right-padded, for a batch of (prompt, response);
    sequences longer than ``max_length`` tokens are cut from the right."""
    encoded = [encode_pair(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    if max_length is not None:
        encoded = [(ids[:max_length], min(n, max_length)) for ids, n in encoded]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(encoded), width), int(pad), dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    response = torch.zeros((len(encoded), width), dtype=torch.bool)
    for row, (tokens, n_prompt) in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        attention[row, : len(tokens)] = 1
        response[row, n_prompt : len(tokens)] = True
    return ids, attention, response


def summed_logprobs_from_logits(
    logits: torch.Tensor, ids: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """(B,) sum over response tokens of log p(token | previous tokens), from (B, T, V) logits."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (token_logp * response_mask[:, 1:].to(token_logp.dtype)).sum(dim=1)


def sequence_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    responses: Sequence[Any],
    *,
    batch_size: int = 8,
    grad: bool = False,
    max_length: int | None = None,
) -> torch.Tensor:
    """(B,) log pi(response | prompt) summed over response tokens, in the model's current mode.

    Why: the DPO implicit reward and every policy-based acquisition input are functions of this
    one number per (prompt, response). ``grad=True`` keeps the graph (for training steps).
    """
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        ids, attention, response = batch_tensors(
            tokenizer,
            prompts[start : start + batch_size],
            responses[start : start + batch_size],
            max_length,
        )
        ids, attention, response = ids.to(device), attention.to(device), response.to(device)
        with torch.set_grad_enabled(grad):
            logits = model(input_ids=ids, attention_mask=attention).logits
            out.append(summed_logprobs_from_logits(logits, ids, response))
    if not out:
        return torch.zeros(0)
    return torch.cat(out)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Mean sigmoid DPO loss -log sigma(beta ((pi_c - ref_c) - (pi_r - ref_r))) over pairs."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -torch.nn.functional.logsigmoid(margin).mean()
