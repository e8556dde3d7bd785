"""im2im's normalization and post-processing, written as bioimage.io processing steps and read back.

A package's steps are plain ``{"id": ..., "kwargs": ...}`` mappings, as in ``rdf.yaml``
(format 0.5). Export writes the steps that compute exactly what im2im computes; import turns
a package's steps into the ``data.normalize`` config of a run and a per-pixel function on
outputs. A step with no im2im equivalent is refused by name, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from im2im_core.data.normalization import MeanStd
from im2im_core.errors import ConfigError
from im2im_core.inference.postprocess import Postprocess

#: The spec's ``eps`` of ``scale_range``: ``(x - low) / (high - low + eps)``.
SCALE_RANGE_EPS = 1e-6
#: What ``predict(normalize=...)`` takes, besides "auto".
Normalization = tuple[float, float] | MeanStd | None


def _per_channel(values: tuple[float, ...]) -> dict[str, Any]:
    if len(values) == 1:
        return {}
    return {"axis": "channel"}


def _value(values: tuple[float, ...]) -> float | list[float]:
    return float(values[0]) if len(values) == 1 else [float(v) for v in values]


def preprocessing_steps(normalization: Normalization, axes: Sequence[str]) -> list[dict[str, Any]]:
    """The steps of an input normalized by ``normalization``; ``axes``: the tensor's axis ids but batch.

    Percentiles ``(low, high)`` of each image (all channels together, as im2im's percentile
    normalization) become ``scale_range`` over ``axes``; training-set statistics become
    ``fixed_zero_mean_unit_variance`` (along the channel axis when there is one pair per channel).
    """
    steps: list[dict[str, Any]] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if normalization is None:
        return steps
    if isinstance(normalization, MeanStd):
        kwargs = {"mean": _value(normalization.mean), "std": _value(normalization.std), **_per_channel(normalization.mean)}
        return [*steps, {"id": "fixed_zero_mean_unit_variance", "kwargs": kwargs}]
    low, high = normalization
    return [*steps, {"id": "scale_range", "kwargs": {"axes": list(axes), "min_percentile": float(low),
                                                     "max_percentile": float(high), "eps": SCALE_RANGE_EPS}}]


def postprocessing_steps(pixelwise: Postprocess | None, restore: MeanStd | None) -> list[dict[str, Any]]:
    """The steps of im2im's per-pixel post-processing, then the inverse of ``restore`` (denoisers).

    Raises
    ------
    ConfigError
        For an argmax, which the spec has no step for.
    """
    steps: list[dict[str, Any]] = []
    if restore is not None:
        steps.append({"id": "scale_linear", "kwargs": {"gain": _value(restore.std), "offset": _value(restore.mean),
                                                       **_per_channel(restore.mean)}})
    if pixelwise is not None:
        if pixelwise.needs_whole_image:
            raise ConfigError("labelling and small-object removal need the whole image: no bioimage.io step does them")
        if pixelwise.activation == "sigmoid":
            steps.append({"id": "sigmoid"})
        elif pixelwise.activation == "softmax":
            steps.append({"id": "softmax", "kwargs": {"axis": "channel"}})
        if pixelwise.argmax:
            raise ConfigError("the spec has no argmax step; export the class probabilities (softmax) instead")
        if pixelwise.threshold is not None:
            steps.append({"id": "binarize", "kwargs": {"threshold": float(pixelwise.threshold)}})
    steps.append({"id": "ensure_dtype", "kwargs": {"dtype": "uint8" if pixelwise and pixelwise.threshold is not None
                                                   else "float32"}})
    return steps


# ------------------------------------------------------------------------------- import
def _as_tuple(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)


def _kwargs(step: Any) -> dict[str, Any]:
    kwargs = step.get("kwargs") or {}
    return dict(kwargs)


def normalize_config(steps: Sequence[dict[str, Any]], source: str, channel_axis: bool,
                     spatial_axes: Sequence[str]) -> tuple[list[dict[str, Any]], Normalization | str]:
    """The ``data.normalize`` config, and ``predict``'s normalization, of a package's input steps.

    Returns the list of im2im transforms (class path and init args) and what
    :func:`~im2im_core.inference.predict` takes as ``normalize`` (``"zscore"`` for a
    per-image z-score, which it computes from each image).

    Raises
    ------
    ConfigError
        Naming ``source`` and the step for any step im2im cannot apply exactly.
    """
    config: list[dict[str, Any]] = []
    normalization: Normalization | str = None
    for step in steps:
        name, kwargs = step.get("id"), _kwargs(step)
        if name == "ensure_dtype" and kwargs.get("dtype") in ("float32", "float64"):
            continue
        if normalization is not None:
            raise ConfigError(f"{source}: input step {name!r} after {config[-1]['class_path'].rsplit('.', 1)[-1]}: im2im "
                              f"applies one normalization; expected a single scale_range, zero_mean_unit_variance, "
                              f"fixed_zero_mean_unit_variance or scale_linear")
        if name == "scale_range":
            axes = set(kwargs.get("axes") or [])
            if channel_axis and "channel" not in axes and kwargs.get("axes") is not None:
                raise ConfigError(f"{source}: scale_range per channel (axes {sorted(axes)}) is not supported; im2im's "
                                  f"percentiles are over all channels together (axes including 'channel')")
            if kwargs.get("reference_tensor") not in (None, "input"):
                raise ConfigError(f"{source}: scale_range with reference_tensor {kwargs['reference_tensor']!r} is not "
                                  f"supported")
            low, high = float(kwargs.get("min_percentile", 0.0)), float(kwargs.get("max_percentile", 100.0))
            config.append({"class_path": "im2im_core.data.normalization.PercentileNormalized",
                           "init_args": {"keys": ["IM"], "lower": low, "upper": high}})
            normalization = (low, high)
        elif name == "fixed_zero_mean_unit_variance":
            mean, std = _as_tuple(kwargs["mean"]), _as_tuple(kwargs["std"])
            normalization = MeanStd(mean, std)
            config.append(_fixed(normalization))
        elif name == "scale_linear":  # x * gain + offset is (x - mean) / std with mean -offset/gain, std 1/gain
            gain, offset = _as_tuple(kwargs.get("gain", 1.0)), _as_tuple(kwargs.get("offset", 0.0))
            if len(gain) != len(offset):
                gain, offset = gain * len(offset) if len(gain) == 1 else gain, offset * len(gain) if len(offset) == 1 else offset
            if any(g == 0 for g in gain):
                raise ConfigError(f"{source}: scale_linear with gain 0 maps every pixel to one value")
            normalization = MeanStd(tuple(-o / g for g, o in zip(gain, offset)), tuple(1 / abs(g) for g in gain))
            if any(g < 0 for g in gain):
                raise ConfigError(f"{source}: scale_linear with a negative gain is not supported")
            config.append(_fixed(normalization))
        elif name == "zero_mean_unit_variance":
            config.append({"class_path": "monai.transforms.NormalizeIntensityd", "init_args": {"keys": ["IM"]}})
            normalization = "zscore"
        else:
            raise ConfigError(f"{source}: input step {name!r} is not supported; im2im applies scale_range, "
                              f"zero_mean_unit_variance, fixed_zero_mean_unit_variance, scale_linear and ensure_dtype")
    return config, normalization


def _fixed(stats: MeanStd) -> dict[str, Any]:
    return {"class_path": "im2im_core.data.normalization.TrainingSetNormalized",
            "init_args": {"keys": ["IM"], "mean": list(stats.mean), "std": list(stats.std)}}


def output_function(steps: Sequence[dict[str, Any]], source: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-pixel function of a package's output steps, on raw outputs ``(B, C, *spatial)``.

    Raises
    ------
    ConfigError
        For a step that needs statistics of the whole output or another tensor (``scale_range``,
        ``scale_mean_variance``, ``zero_mean_unit_variance``) or that im2im does not know.
    """
    functions: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for step in steps:
        name, kwargs = step.get("id"), _kwargs(step)
        if name == "sigmoid":
            functions.append(torch.sigmoid)
        elif name == "softmax":
            if kwargs.get("axis", "channel") != "channel":
                raise ConfigError(f"{source}: softmax along {kwargs['axis']!r}: im2im supports the channel axis only")
            functions.append(lambda x: torch.softmax(x, dim=1))
        elif name == "binarize":
            threshold = _as_tuple(kwargs["threshold"])
            functions.append(lambda x, t=threshold: (x > _shaped(t, x)).to(torch.uint8))
        elif name == "clip":
            if kwargs.get("min_percentile") is not None or kwargs.get("max_percentile") is not None:
                raise ConfigError(f"{source}: clip by percentiles needs the whole output; not supported")
            functions.append(lambda x, lo=kwargs.get("min"), hi=kwargs.get("max"): torch.clamp(x, lo, hi))
        elif name == "scale_linear":
            gain, offset = _as_tuple(kwargs.get("gain", 1.0)), _as_tuple(kwargs.get("offset", 0.0))
            functions.append(lambda x, g=gain, o=offset: x * _shaped(g, x) + _shaped(o, x))
        elif name == "ensure_dtype":
            dtype = getattr(torch, str(kwargs.get("dtype", "float32")), None)
            if dtype is None:
                raise ConfigError(f"{source}: ensure_dtype {kwargs.get('dtype')!r} is not a known dtype")
            functions.append(lambda x, d=dtype: x.to(d))
        else:
            raise ConfigError(f"{source}: output step {name!r} is not supported (it needs statistics of the whole output "
                              f"or another tensor); im2im applies sigmoid, softmax, binarize, clip, scale_linear, ensure_dtype")

    def apply(output: torch.Tensor) -> torch.Tensor:
        for function in functions:
            output = function(output)
        return output

    return apply


def _shaped(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """Values as a ``(1, C or 1, 1, ...)`` tensor that broadcasts over ``like``."""
    return torch.tensor(values, dtype=torch.float32, device=like.device).reshape(1, len(values), *[1] * (like.ndim - 2))
