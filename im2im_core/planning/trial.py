"""Batch size and step time measured by trial training steps, not estimated from a formula.

Each trial runs in a fresh process (``spawn``), builds the planned network from its config (in
the channels-last layout on the CPU, as im2im trains there), and takes three optimizer steps
(forward, mean-squared loss, backward, Adam) on random patches of one batch size; it reports its
peak memory (the process's peak resident set on the CPU, ``torch.cuda.max_memory_allocated`` on
a GPU) and the time of its last step. Two batch sizes give the memory of one more patch, and the
largest batch that fits the budget follows.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

from im2im_core.errors import ConfigError

#: Largest batch the plan proposes (beyond it, steps are slower than more steps of smaller batches help).
MAX_BATCH = 32


@dataclass(frozen=True)
class Trial:
    """Peak memory (bytes) and seconds of one step, for one batch size."""

    batch: int
    peak_bytes: int
    step_seconds: float


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run(backbone: dict[str, Any], shape: tuple[int, ...], device: str, threads: int, results: Any) -> None:
    try:
        import torch
        from jsonargparse import ArgumentParser

        torch.set_num_threads(threads)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_subclass_arguments(torch.nn.Module, "backbone")
        network = parser.instantiate_classes(parser.parse_object({"backbone": backbone})).backbone.to(device)
        x = torch.rand(shape, device=device)
        if device == "cpu":  # the layout im2im trains in on the CPU (FrameworkBase's channels_last="auto")
            from im2im_core.inference.optimize import channels_last

            layout = channels_last(len(shape) - 2)
            if layout is not None:
                network, x = network.to(memory_format=layout), x.to(memory_format=layout)
        optimizer = torch.optim.Adam(network.parameters(), 1e-3)
        seconds = 0.0
        for _ in range(3):
            started = time.perf_counter()
            optimizer.zero_grad()
            output = network(x)
            loss = (output - output.detach().mean()).square().mean()
            loss.backward()
            optimizer.step()
            if device != "cpu":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() if device != "cpu" else _peak_rss()
        results.put(("ok", peak, seconds))
    except Exception as exc:  # the reason goes back to the planner as one line
        results.put(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 0.0))


def trial(backbone: dict[str, Any], batch: int, in_channels: int, patch: list[int], device: str, threads: int) -> Trial:
    """One trial of ``batch`` patches in a fresh process.

    Raises
    ------
    ConfigError
        If the planned network fails on the patch (the reason in one line).
    """
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_run, args=(backbone, (batch, in_channels, *patch), device, threads, results))
    process.start()
    process.join(timeout=600)
    if process.is_alive():
        process.kill()
        raise ConfigError(f"a trial step of batch {batch} took over 10 minutes: the patch {patch} is too large here")
    if results.empty():
        raise ConfigError(f"a trial step of batch {batch} on patches {patch} was killed (out of memory?)")
    status, peak, seconds = results.get()
    if status != "ok":
        raise ConfigError(f"the planned network fails on patches {patch}: {peak}")
    return Trial(batch, int(peak), float(seconds))


def batch_for_budget(backbone: dict[str, Any], in_channels: int, patch: list[int], device: str, memory_bytes: int,
                     threads: int) -> tuple[int, Trial, Trial, str]:
    """The largest batch whose measured memory fits ``memory_bytes``, the two trials, and the reason."""
    one = trial(backbone, 1, in_channels, patch, device, threads)
    two = trial(backbone, 2, in_channels, patch, device, threads)
    per_patch = max(1, two.peak_bytes - one.peak_bytes)
    base = one.peak_bytes - per_patch
    fits = int((memory_bytes - base) // per_patch)
    batch = max(1, min(MAX_BATCH, fits))
    why = (f"trial steps measured {one.peak_bytes / 2**30:.2f} GB at batch 1 and {two.peak_bytes / 2**30:.2f} GB at "
           f"batch 2 ({per_patch / 2**20:.0f} MB a patch): {batch} patches fit {memory_bytes / 2**30:.1f} GB"
           + (f" (capped at {MAX_BATCH})" if fits > MAX_BATCH else ""))
    if fits < 1:
        why += "; even one patch exceeds the budget, so batch 1 (raise --memory or shrink the patch)"
    return batch, one, two, why
