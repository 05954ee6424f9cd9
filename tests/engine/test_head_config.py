"""Issue 7 item 4: every head setting of the spec reaches the head the engine builds."""

from __future__ import annotations

import pytest

from prefloop.engine.build import head_params
from prefloop.reward.heads import make_head
from prefloop.spec import HeadSpec


def _parameter_count(kind: str, num_layers: int) -> tuple[int, int]:
    spec = HeadSpec(kind=kind, num_layers=num_layers, hidden_dim=16, num_heads=2)  # type: ignore[arg-type]
    head = make_head(spec.kind, input_dim=8, seed=0, **head_params(spec))
    return sum(p.numel() for p in head.network.parameters()), head.num_layers  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["epinet", "ensemble"])
def test_num_layers_reaches_the_head(kind: str) -> None:
    counts = {}
    for layers in (1, 2, 3):
        counts[layers], built_layers = _parameter_count(kind, layers)
        assert built_layers == layers
    # one more hidden layer adds one hidden x hidden Linear (+ bias) to the trunk (per member)
    members = 1 if kind == "epinet" else 2
    assert counts[2] - counts[1] == counts[3] - counts[2] == members * (16 * 16 + 16)
