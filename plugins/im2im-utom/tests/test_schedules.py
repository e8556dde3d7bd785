"""CycleGAN's learning-rate policy: constant, then linear decay."""

from __future__ import annotations

import pytest
import torch

from im2im_utom.schedules import ConstantThenLinearDecay


def optimizer(lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def rates(scheduler: ConstantThenLinearDecay, ticks: int) -> list[float]:
    values = []
    for _ in range(ticks):
        values.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return values


def test_constant_then_linear_decay_is_cyclegans_linear_policy() -> None:
    """CycleGAN: lr * (1 - max(0, t + 1 - n_epochs) / (n_epochs_decay + 1)) at epoch t (0-based)."""
    scheduler = ConstantThenLinearDecay(optimizer(1.0), constant=3, decay=4)
    assert rates(scheduler, 8) == pytest.approx([1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.0])
    assert rates(ConstantThenLinearDecay(optimizer(1.0), constant=0, decay=1), 1) == [0.5]


def test_unresolved_schedule_is_constant_until_the_run_length_is_known() -> None:
    scheduler = ConstantThenLinearDecay(optimizer(1.0))
    assert not scheduler.resolved and rates(scheduler, 3) == [1, 1, 1]
    fresh = ConstantThenLinearDecay(optimizer(1.0))
    fresh.resolve(10)  # half constant, half decay
    assert (fresh.constant, fresh.decay) == (5, 5)
    assert rates(fresh, 10) == pytest.approx([1] * 5 + [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    given = ConstantThenLinearDecay(optimizer(1.0), constant=2, decay=2)
    given.resolve(100)  # given lengths win
    assert (given.constant, given.decay) == (2, 2)


def test_state_round_trip_keeps_the_lengths() -> None:
    scheduler = ConstantThenLinearDecay(optimizer(1.0))
    scheduler.resolve(6)
    rates(scheduler, 4)
    restored = ConstantThenLinearDecay(optimizer(1.0))
    restored.load_state_dict(scheduler.state_dict())
    assert (restored.constant, restored.decay, restored.last_epoch) == (3, 3, 4)
    assert restored.factor(restored.last_epoch) == pytest.approx(scheduler.get_last_lr()[0])


@pytest.mark.parametrize(("constant", "decay"), [(3, None), (None, 2), (-1, 2)])
def test_bad_lengths(constant: int | None, decay: int | None) -> None:
    with pytest.raises(ValueError, match="constant and decay"):
        ConstantThenLinearDecay(optimizer(), constant=constant, decay=decay)
