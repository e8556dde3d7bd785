"""``make_plan``: a fingerprint and a task become a normal im2im config, every choice with its reason.

The config starts from the task's preset (its framework, loss, optimizer, callbacks) and replaces
what depends on the data: patch size, network topology (FCN tasks get MONAI's ``DynUNet``, the
network nnU-Net configures, with the planned kernels and strides), normalization, sampling,
batch size, EmbedSeg's offset range, the training budget and the prediction window.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from im2im_core.errors import ConfigError, DataError
from im2im_core.planning.fingerprint import TASKS, Fingerprint, empty_patch_share
from im2im_core.planning.rules import (
    Topology,
    embedding_voxel_size,
    first_level,
    fit_to,
    normalization,
    offset_range,
    patch_size,
    sampling,
    topology,
    unknown_z_spacing,
)

#: The preset each task starts from, by spatial dimensions.
PRESETS = {
    ("segmentation", 2): "semanticseg_2d", ("segmentation", 3): "semanticseg_3d",
    ("regression", 2): "labelfree_2d", ("regression", 3): "labelfree_3d",
    ("instance", 2): "instanceseg_2d", ("instance", 3): "instanceseg_3d",
    ("denoise", 2): "denoise_n2v_2d", ("denoise", 3): "denoise_n2v_3d",
    ("unpaired", 2): "unpaired_seg_2d_cyclegan", ("unpaired", 3): "unpaired_modality_3d_cyclegan",
}
#: Training budget when ``--time`` is not given.
DEFAULT_SECONDS = 30 * 60
#: Validations over a run.
VALIDATIONS = 10
#: Optimizer steps a budget should hold at least (nnU-Net's epoch is 250 steps); the batch shrinks to fit them.
MIN_STEPS = 300
#: Largest batch on the CPU, by spatial dimensions: beyond it a step costs more time than it gains.
CPU_BATCH = {2: 8, 3: 2}


@dataclass
class Plan:
    """A planned config (a dict as im2im fit reads it), the reason of each choice by dotted key, and the measures."""

    config: dict[str, Any]
    reasons: dict[str, str] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)


def infer_task(data: Fingerprint) -> str:
    """The task the targets imply: instance labels, masks or classes, intensities, none (denoise), unpaired."""
    return {"labels": "instance", "mask": "segmentation", "classes": "segmentation", "intensity": "regression",
            "none": "denoise", "unpaired": "unpaired"}[data.target]


def check_task(task: str, data: Fingerprint) -> None:
    """Refuse a task the data cannot train, in one line that says what the targets are."""
    if task not in TASKS:
        raise ConfigError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    found = {"labels": "instance labels", "mask": "binary masks", "classes": "class masks", "intensity": "intensity images",
             "none": "no targets", "unpaired": "two unpaired domains"}[data.target]
    allowed = {"segmentation": ("labels", "mask", "classes"), "instance": ("labels",), "regression": ("intensity",),
               "denoise": ("none", "intensity", "labels", "mask", "classes"), "unpaired": ("unpaired",)}[task]
    if data.target not in allowed:
        hint = {"instance": "give instance labels (one id per object), or --task segmentation",
                "regression": "give intensity targets, or --task segmentation / instance",
                "segmentation": "give masks or labels as targets",
                "unpaired": "put the two domains in IM/ and GT/ with --data.layout unpaired"}.get(task, "")
        raise ConfigError(f"--task {task} does not match the data in {data.data_path}: its targets are {found}; {hint}")


def _preset(name: str) -> dict[str, Any]:
    from im2im_core.plugins import get_registry

    presets = get_registry().entries["presets"]
    if name not in presets:
        plugin = {"instance": "im2im-embedseg", "denoise": "im2im-n2v", "unpaired": "im2im-utom"}
        raise ConfigError(f"the plan starts from the preset {name!r}, which is not installed; install its plugin "
                          f"({', '.join(plugin.values())})")
    return yaml.safe_load(presets[name].text())


def _dynunet(kernels: list[list[int]], strides: list[list[int]], filters: list[int], dims: int) -> dict[str, Any]:
    return {"class_path": "monai.networks.nets.DynUNet",
            "init_args": {"spatial_dims": dims, "kernel_size": kernels, "strides": strides,
                          "upsample_kernel_size": strides[1:], "filters": filters, "norm_name": "instance",
                          "deep_supervision": False, "res_block": False}}


def _strided_unet(strides: list[list[int]], filters: list[int], dims: int) -> dict[str, Any]:
    # MONAI's UNet, as the semanticseg presets: its first convolution has stride 2, and a transposed convolution
    # brings the last level back to full resolution. DynUNet cannot: its first stride shrinks the output.
    # first_level() chooses it only where every pooling halves every axis, so one int per pooling says it.
    # Instance norm, as nnU-Net: batch norm (a step 1.3x cheaper, bench_plan_step.py) kept running statistics that
    # did not hold for whole images (docs/results.md, "Planning").
    return {"class_path": "monai.networks.nets.UNet",
            "init_args": {"spatial_dims": dims, "channels": filters, "strides": [s[0] for s in strides[1:]], "kernel_size": 3,
                          "up_kernel_size": 3, "num_res_units": 1, "norm": "instance"}}


def backbone(plan: Topology, device: str, strided_first: bool) -> dict[str, Any]:
    """The network of a topology as config: MONAI's UNet with a strided first convolution, or nnU-Net's DynUNet."""
    filters = plan.filters(device, strided_first)
    dims = len(plan.strides[0])
    return _strided_unet(plan.strides, filters, dims) if strided_first else _dynunet(plan.kernels, plan.strides, filters, dims)



def make_plan(data: Fingerprint, task: str | None = None, device: str = "cpu", memory_gb: float | None = None,
              seconds: float | None = None, spacing: list[float] | None = None, measure: bool = True,
              threads: int | None = None) -> Plan:
    """Plan a config for ``data``.

    Parameters
    ----------
    task : str, optional
        One of :data:`~im2im_core.planning.fingerprint.TASKS`; default: what the targets imply.
    device : {"cpu", "gpu"}
        Where training runs: the patch budget, network width and trial steps.
    memory_gb : float, optional
        Memory a training step may use; default: half the machine's memory (CPU), 80 % of the
        GPU's.
    seconds : float, optional
        Training budget (``trainer.max_time``); default 30 minutes.
    spacing : list of float, optional
        Voxel size per spatial axis (micrometres), where the files do not say.
    measure : bool
        Run the trial steps (batch size and step time); without, the preset's batch size stays.
    """
    task = task or infer_task(data)
    check_task(task, data)
    if device not in ("cpu", "gpu"):
        raise ConfigError(f"--device {device!r}: expected cpu or gpu")
    dims = len(data.median_shape)
    planned = Plan(copy.deepcopy(_preset(PRESETS[(task, dims)])))
    config, reasons = planned.config, planned.reasons
    if spacing is not None:
        if len(spacing) != dims or any(s <= 0 for s in spacing):
            raise ConfigError(f"--spacing {spacing}: expected {dims} positive sizes, one per spatial axis")
        data.spacing, data.spacing_known = list(spacing), [True] * dims
    spacing_why = None
    if spacing is None:
        data.spacing, spacing_why = unknown_z_spacing(data)
    patch, why = patch_size(data, device)
    if spacing_why:
        why = f"{spacing_why}; {why}"
    plan, topo_why = topology(patch, data.spacing)
    patch = fit_to(patch, plan.divisor, data.median_shape)
    plan, topo_why = topology(patch, data.spacing)
    config["data"].update(data_path=data.data_path, dims=data.dims, patch_size=patch)
    if data.layout != "auto":
        config["data"]["layout"] = data.layout
    for key, default in (("input_dir", "IM"), ("target_dir", "GT")):
        if getattr(data, key) != default:
            config["data"][key] = getattr(data, key)
    reasons["data.patch_size"] = why + f"; multiples of {'x'.join(map(str, plan.divisor))} (the network's strides)"
    model = config["model"]["init_args"]
    if task in ("segmentation", "regression"):
        model["task"] = task
        strided, first_why = first_level(data, device, plan)
        model["backbone"] = backbone(plan, device, strided)
        network = "MONAI UNet, residual units, instance norm" if strided else "MONAI DynUNet (nnU-Net's network)"
        reasons["model.init_args.backbone"] = f"{network}: {first_why}; {topo_why}; filters {plan.filters(device, strided)}"
        planned.measured.update(topology={"kernels": plan.kernels, "strides": plan.strides}, strided_first=strided,
                                device=device)
        config["data"]["target"] = "intensity" if task == "regression" else "mask"
    if task in ("segmentation", "instance", "regression", "denoise") and data.target != "unpaired":
        values, why = normalization(data)
        config["data"]["normalize"] = [{"class_path": "im2im_core.data.normalization.PercentileNormalized",
                                        "init_args": {"keys": ["IM"], **values}}] if task != "denoise" else \
            config["data"].get("normalize")
        if task != "denoise":
            reasons["data.normalize"] = why
    if task in ("segmentation", "instance"):
        data.empty_patch_share = empty_patch_share(data, patch)
        values, why = sampling(data.empty_patch_share)
        config["data"].update(values)
        reasons["data.sampling"] = why
    if task == "instance":
        value, why = offset_range(data)
        if value is not None:
            model["offset_range"] = value
            reasons["model.init_args.offset_range"] = why
        voxel_size, why = embedding_voxel_size(data)
        if voxel_size is not None:
            model["voxel_size"] = voxel_size
            reasons["model.init_args.voxel_size"] = why
    budget = seconds or DEFAULT_SECONDS
    _trainer(config, budget, reasons)
    if measure and task in ("segmentation", "regression"):
        _measured_batch(planned, data, patch, device, memory_gb, budget, threads)
    config.setdefault("prediction", {})
    if task in ("segmentation", "regression"):
        window = fit_to([min(2 * p, n) for p, n in zip(patch, data.median_shape)], plan.divisor, data.median_shape)
        model["roi_size"] = window
        reasons["model.init_args.roi_size"] = (f"prediction and validation window: twice the patch within the median "
                                               f"image, multiples of {'x'.join(map(str, plan.divisor))} as the network "
                                               f"needs (no gradients, so a window can be larger than a patch)")
    planned.measured.update(patch_size=patch, task=task)
    return planned


def _trainer(config: dict[str, Any], seconds: float, reasons: dict[str, str]) -> None:
    trainer = config["trainer"]
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    trainer.update(max_epochs=-1, max_time=f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}",
                   default_root_dir="im2im_runs/planned")
    trainer.pop("max_steps", None)
    if isinstance(trainer.get("logger"), dict):
        trainer["logger"]["init_args"]["save_dir"] = "im2im_runs/planned"
    for callback in trainer.get("callbacks") or []:
        if callback.get("class_path", "").endswith("ModelCheckpoint"):
            # at the end of every epoch: a run stopped by max_time keeps its last full epoch
            callback["init_args"].pop("every_n_train_steps", None)
            callback["init_args"].update(dirpath="im2im_runs/planned/checkpoints", every_n_epochs=1,
                                         save_on_train_epoch_end=True)
    config.setdefault("prediction", {})["output_dir"] = "im2im_runs/planned/predictions"
    reasons["trainer.max_time"] = f"the training budget, {seconds / 60:g} minutes (--time)"


def _measured_batch(planned: Plan, data: Fingerprint, patch: list[int], device: str, memory_gb: float | None,
                    seconds: float, threads: int | None) -> None:
    from im2im_core.planning.trial import batch_for_budget

    config, reasons = planned.config, planned.reasons
    backbone = copy.deepcopy(config["model"]["init_args"]["backbone"])
    backbone["init_args"].update(in_channels=data.channels, out_channels=1)
    memory = memory_gb * 2**30 if memory_gb else _default_memory(device)
    torch_device = "cuda" if device == "gpu" else "cpu"
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or (os.cpu_count() or 1)
    fits, one, two, why = batch_for_budget(backbone, data.channels, patch, torch_device, int(memory), threads)

    def step_of(batch: int) -> float:  # seconds of a step, linear in the batch between the two trials
        return max(1e-3, one.step_seconds + (two.step_seconds - one.step_seconds) * (batch - 1))

    samples = config["data"].get("samples_per_image", 4)
    train_images = max(1, round(data.images * (1 - config["data"].get("val_fraction", 0.2))))
    in_time = max((b for b in range(1, fits + 1) if seconds / step_of(b) >= MIN_STEPS), default=1)
    batch = fits if fits < 2 else max(2, min(fits, in_time))
    cap = CPU_BATCH[len(patch)] if device == "cpu" else None
    if cap is not None and batch > cap:
        batch = cap
        why += (f"; {cap}: on the CPU compute, not memory, bounds a step, and {cap} patches a step leave the budget "
                f"{int(seconds / step_of(cap))} steps (nnU-Net's 3D batch is 2; bench_plan_bbbc039.py: 28 patches a step "
                f"lost to the preset at equal time)")
    if batch > train_images * samples:
        batch = train_images * samples
        why += f"; {batch}, the patches of one epoch ({train_images} training images x {samples})"
    elif batch < fits and batch != cap:
        why += (f"; {batch} so that at least {MIN_STEPS} steps fit the {seconds / 60:g} minute budget (more small steps "
                f"train better than a few large ones)")
    config["data"]["batch_size"] = batch
    reasons["data.batch_size"] = why
    step = step_of(batch)
    steps_per_epoch = max(1, math.ceil(train_images * samples / batch))
    epochs = max(1, int(seconds / max(step, 1e-3) / steps_per_epoch))
    every = max(1, epochs // VALIDATIONS)
    config["trainer"]["check_val_every_n_epoch"] = every
    reasons["trainer.check_val_every_n_epoch"] = (f"a step of {batch} patches takes about {step:.2f} s here (trial), so "
                                                  f"about {int(seconds / max(step, 1e-3))} steps ({epochs} epochs of "
                                                  f"{steps_per_epoch}) fit the budget: {VALIDATIONS} validations")
    planned.measured.update(step_seconds=step, steps_in_budget=int(seconds / max(step, 1e-3)), trial_batch_1=one.__dict__,
                            trial_batch_2=two.__dict__)


def _default_memory(device: str) -> float:
    if device == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise DataError("--device gpu but no GPU is visible to torch here; plan with --device cpu")
        return 0.8 * torch.cuda.get_device_properties(0).total_memory
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return 0.5 * pages
