"""A real ``prefloop run`` directory and a tiny causal LM saved next to it, per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from _tiny_llama import make_tiny_run, pair_texts, save_tiny_causal_lm
from prefloop.posttrain.config import load_pairs


@pytest.fixture(scope="session")
def run_dir(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One round of the shrunk quickstart (DRTS, seed 3): the dataset every test trains on."""
    root = tmp_path_factory.mktemp("posttrain")
    return make_tiny_run(repo_root, root / "runs" / "tiny", root / "features")


@pytest.fixture(scope="session")
def tiny_lm_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose tokenizer was trained on the run's texts."""
    texts = pair_texts(load_pairs(run_dir).rows)
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), texts, seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on one torch thread: on 2 busy cores threads only add hand-off cost."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
