"""AnchorSchedule: the exponential, linear and constant lambda_t of ActiveUltraFeedback."""

from __future__ import annotations

import itertools

import pytest

from prefloop.trainer.anchor_schedule import AnchorSchedule, AnchorScheduleError


def test_paper_setting_ends_near_0_0134() -> None:
    schedule = AnchorSchedule(initial=1.0, decay="exponential", base=0.999, scaler=4308.0)
    assert schedule.value(0, 100) == 1.0
    assert schedule.value(100, 100) == pytest.approx(0.01344, abs=5e-5)
    assert schedule.value(100, 100) == pytest.approx(0.999**4308)
    # the table of spec section 2: after 10k of 60,829 UltraFeedback prompts, lambda ~ 0.49
    assert schedule.value(10_000, 60_829) == pytest.approx(0.49, abs=0.01)


def test_base_0_99_decays_much_faster() -> None:
    schedule = AnchorSchedule(base=0.99)
    assert schedule.value(10_000, 60_829) == pytest.approx(8e-4, rel=0.1)


def test_linear_and_constant_decays() -> None:
    linear = AnchorSchedule(initial=2.0, decay="linear")
    assert linear.value(0, 10) == 2.0
    assert linear.value(5, 10) == pytest.approx(1.0)
    assert linear.value(10, 10) == 0.0
    assert AnchorSchedule(initial=0.3, decay="constant").value(7, 10) == 0.3


def test_progress_past_the_end_is_capped() -> None:
    schedule = AnchorSchedule()
    assert schedule.value(250, 100) == schedule.value(100, 100)
    assert AnchorSchedule(decay="linear").value(250, 100) == 0.0


def test_values_decrease_monotonically() -> None:
    schedule = AnchorSchedule()
    values = [schedule.value(n, 64 * 20) for n in range(0, 64 * 21, 64)]
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1.0}, "initial"),
        ({"decay": "cosine"}, "decay"),
        ({"base": 1.5}, "base"),
        ({"base": 0.0}, "base"),
        ({"scaler": -3.0}, "scaler"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AnchorScheduleError, match=message):
        AnchorSchedule(**kwargs)  # type: ignore[arg-type]


def test_bad_progress_is_named() -> None:
    with pytest.raises(AnchorScheduleError, match="n_total"):
        AnchorSchedule().value(0, 0)
    with pytest.raises(AnchorScheduleError, match="n_done"):
        AnchorSchedule().value(-1, 10)
