"""CycleGAN's learning-rate policy: constant, then linearly decaying towards zero.

torch has no single scheduler for it (``SequentialLR`` of ``ConstantLR`` and ``LinearLR``
needs scheduler objects, which a YAML config cannot give), so it is one small class here.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["ConstantThenLinearDecay", "run_length"]


class ConstantThenLinearDecay(LRScheduler):
    """Keep the learning rate for ``constant`` ticks, then decay it linearly over ``decay`` ticks.

    The factor at tick ``t`` (0-based) is CycleGAN's ``linear`` policy,
    ``1 - max(0, t + 1 - constant) / (decay + 1)``: 1 up to tick ``constant - 1``, then down by
    ``1 / (decay + 1)`` per tick to ``1 / (decay + 1)`` at the last tick ``constant + decay - 1``,
    and 0 after it (a run longer than the schedule).
    A tick is an epoch or a batch, as the framework's ``lr_interval`` says.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer whose learning rates it scales.
    constant, decay : int, optional
        Ticks at the initial rate, and ticks of the decay (100 and 100 epochs in CycleGAN).
        ``None`` (both): half of the run each, filled in by the CycleGAN and UTOM frameworks
        from ``trainer.max_steps`` or ``trainer.max_epochs`` when training starts.
    last_epoch : int
        Index of the last tick, -1 to start.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, constant: int | None = None, decay: int | None = None,
                 last_epoch: int = -1) -> None:
        if (constant is None) != (decay is None) or (constant is not None and (constant < 0 or decay < 0)):
            raise ValueError(f"ConstantThenLinearDecay: give constant and decay as two ticks counts >= 0, or neither "
                             f"(got constant={constant}, decay={decay})")
        self.constant, self.decay = constant, decay
        super().__init__(optimizer, last_epoch)

    @property
    def resolved(self) -> bool:
        """Whether ``constant`` and ``decay`` are known."""
        return self.constant is not None and self.decay is not None

    def resolve(self, ticks: int) -> None:
        """Split a run of ``ticks`` ticks: half constant, half decay (if not given)."""
        if not self.resolved:
            self.constant = ticks // 2
            self.decay = ticks - self.constant
            self._set_lrs()

    def factor(self, tick: int) -> float:
        """Multiplier of the initial learning rate at ``tick``."""
        if not self.resolved:
            return 1.0
        return max(0.0, 1.0 - max(0, tick + 1 - self.constant) / (self.decay + 1))

    def get_lr(self) -> list[float]:
        """The learning rates at the current tick: each initial rate times :meth:`factor`."""
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def _set_lrs(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def run_length(trainer, optimizers_per_batch: int) -> tuple[int, int]:  # noqa: ANN001 (lightning Trainer)
    """``(batches, epochs)`` the trainer will run, from ``max_steps`` and ``max_epochs``.

    ``max_steps`` counts optimizer steps, ``optimizers_per_batch`` of them per batch (2 for
    CycleGAN: generators, then discriminators). Loads the training data if needed (to count
    its batches). Raises ``ValueError`` when neither limit is finite.
    """
    if trainer.train_dataloader is None:  # as Lightning's estimated_stepping_batches does
        trainer.fit_loop.setup_data()
    per_epoch = trainer.num_training_batches
    limits = []
    if trainer.max_steps is not None and trainer.max_steps > 0:
        limits.append(math.ceil(trainer.max_steps / optimizers_per_batch))
    if trainer.max_epochs is not None and trainer.max_epochs > 0 and math.isfinite(per_epoch):
        limits.append(trainer.max_epochs * int(per_epoch))
    if not limits or not math.isfinite(per_epoch) or per_epoch < 1:
        raise ValueError("the length of the run is unknown: set trainer.max_steps or trainer.max_epochs")
    batches = min(limits)
    return batches, math.ceil(batches / int(per_epoch))
