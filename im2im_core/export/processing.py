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


def preprocessing_steps(transforms: Sequence[Any], axes: Sequence[str], source: str) -> list[dict[str, Any]]:
    """The steps of the input normalization ``transforms`` (the run's ``data.normalize`` on ``IM``).

    ``axes``: the tensor's axis ids but batch. Each transform becomes the steps that compute
    what it computes: ``PercentileNormalized`` (percentiles of all channels together) a
    ``scale_range`` over ``axes``, then ``scale_linear`` to its output range and ``clip``;
    ``TrainingSetNormalized`` (fitted) ``fixed_zero_mean_unit_variance``; ``Binarized``
    ``binarize`` at 0; MONAI's ``ScaleIntensityRanged`` ``scale_linear`` (and ``clip``).

    Raises
    ------
    ConfigError
        Naming ``source`` and the first transform that has no exact equivalent.
    """
    from monai.transforms import NormalizeIntensityd, ScaleIntensityRanged

    from im2im_core.data.normalization import CenterNormalized, PercentileNormalized, TrainingSetNormalized
    from im2im_core.data.transforms import Binarized

    steps: list[dict[str, Any]] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    for transform in transforms:
        name = type(transform).__name__
        if type(transform) is PercentileNormalized:
            scaler = transform.scaler
            if scaler.relative or scaler.channel_wise:
                raise ConfigError(f"{source}: {name} with relative or channel_wise has no bioimage.io equivalent")
            steps.append({"id": "scale_range", "kwargs": {"axes": list(axes), "min_percentile": float(scaler.lower),
                                                          "max_percentile": float(scaler.upper), "eps": SCALE_RANGE_EPS}})
            steps += _affine_to(float(scaler.b_min), float(scaler.b_max), scaler.clip)
        elif type(transform) is TrainingSetNormalized:
            stats = transform.statistics.get("IM")
            if stats is None:
                raise ConfigError(f"{source}: TrainingSetNormalized has no statistics for IM (the checkpoint holds none)")
            kwargs = {"mean": _value(stats.mean), "std": _value(stats.std), **_per_channel(stats.mean)}
            steps.append({"id": "fixed_zero_mean_unit_variance", "kwargs": kwargs})
        elif type(transform) is NormalizeIntensityd and _plain_zscore(transform):
            steps.append({"id": "zero_mean_unit_variance",
                          "kwargs": {"axes": list(axes[1:]) if transform.normalizer.channel_wise else list(axes),
                                     "eps": 1e-6}})
        elif type(transform) is CenterNormalized and transform.spatial_dims == 2:  # 2D: all pixels, a plain z-score
            steps.append({"id": "zero_mean_unit_variance", "kwargs": {"axes": list(axes), "eps": 1e-6}})
        elif type(transform) is Binarized:
            steps.append({"id": "binarize", "kwargs": {"threshold": 0.0}})
        elif type(transform) is ScaleIntensityRanged:
            scaler = transform.scaler
            if scaler.b_min is None or scaler.b_max is None or scaler.a_max == scaler.a_min:
                raise ConfigError(f"{source}: {name} without b_min and b_max has no bioimage.io equivalent")
            gain = (scaler.b_max - scaler.b_min) / (scaler.a_max - scaler.a_min)
            steps.append({"id": "scale_linear", "kwargs": {"gain": float(gain),
                                                           "offset": float(scaler.b_min - scaler.a_min * gain)}})
            if scaler.clip:
                steps.append({"id": "clip", "kwargs": {"min": float(scaler.b_min), "max": float(scaler.b_max)}})
        else:
            raise ConfigError(f"{source}: data.normalize step {name} has no bioimage.io equivalent; export supports "
                              f"PercentileNormalized, TrainingSetNormalized, NormalizeIntensityd, CenterNormalized (2D), "
                              f"Binarized and ScaleIntensityRanged")
    return [*steps, {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]  # binarize gives booleans


def _plain_zscore(transform: Any) -> bool:
    """Whether a MONAI ``NormalizeIntensityd`` is a plain z-score of each image (or channel): no fixed
    subtrahend or divisor, all pixels counted.
    """
    normalizer = transform.normalizer
    return normalizer.subtrahend is None and normalizer.divisor is None and not normalizer.nonzero


def _affine_to(low: float, high: float, clip: bool) -> list[dict[str, Any]]:
    """Steps from 0..1 to ``low``..``high``, clipped there with ``clip``."""
    steps = [] if (low, high) == (0.0, 1.0) else [{"id": "scale_linear", "kwargs": {"gain": high - low, "offset": low}}]
    return steps + ([{"id": "clip", "kwargs": {"min": low, "max": high}}] if clip else [])


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


#: Input steps that act on each pixel alone: run inside the window network, after the normalization.
POINTWISE_INPUT_STEPS = ("binarize", "scale_linear", "clip", "ensure_dtype", "sigmoid")


def normalize_config(steps: Sequence[dict[str, Any]], source: str,
                     channel_axis: bool) -> tuple[list[dict[str, Any]], Normalization | str, list[dict[str, Any]]]:
    """The ``data.normalize`` config, ``predict``'s normalization and the per-pixel rest of a package's input steps.

    At most one step needs statistics of the image (``scale_range``, ``zero_mean_unit_variance``)
    or is a fixed z-score (``fixed_zero_mean_unit_variance``): it becomes the data module's
    normalization, and what :func:`~im2im_core.inference.predict` takes as ``normalize``
    (``"zscore"`` for a per-image z-score). Per-pixel steps after it (``scale_linear``, ``clip``,
    ``binarize``) are returned to run on each window before the network; they commute with
    cutting the image into windows.

    Raises
    ------
    ConfigError
        Naming ``source`` and the step for any step im2im cannot apply exactly.
    """
    config: list[dict[str, Any]] = []
    normalization: Normalization | str = None
    pointwise: list[dict[str, Any]] = []
    for step in steps:
        name, kwargs = step.get("id"), _kwargs(step)
        if name in POINTWISE_INPUT_STEPS:
            if name != "ensure_dtype" or pointwise:
                pointwise.append(step)
            continue
        if config or pointwise:
            raise ConfigError(f"{source}: input step {name!r} after another normalization or per-pixel step: im2im "
                              f"applies one normalization (scale_range, zero_mean_unit_variance or "
                              f"fixed_zero_mean_unit_variance), then per-pixel steps")
        if name == "scale_range":
            axes = set(kwargs.get("axes") or [])
            if channel_axis and kwargs.get("axes") is not None and "channel" not in axes:
                raise ConfigError(f"{source}: scale_range per channel (axes {sorted(axes)}) is not supported; im2im's "
                                  f"percentiles are over all channels together (axes including 'channel')")
            if kwargs.get("reference_tensor") is not None:
                raise ConfigError(f"{source}: scale_range with reference_tensor {kwargs['reference_tensor']!r} is not "
                                  f"supported")
            low, high = float(kwargs.get("min_percentile", 0.0)), float(kwargs.get("max_percentile", 100.0))
            config.append({"class_path": "im2im_core.data.normalization.PercentileNormalized",
                           "init_args": {"keys": ["IM"], "lower": low, "upper": high}})
            normalization = (low, high)
        elif name == "fixed_zero_mean_unit_variance":
            _channel_axis_only(kwargs, name, source)
            normalization = MeanStd(_as_tuple(kwargs["mean"]), _as_tuple(kwargs["std"]))
            config.append(_fixed(normalization))
        elif name == "zero_mean_unit_variance":
            axes = kwargs.get("axes")
            if channel_axis and axes is not None and "channel" not in axes:
                raise ConfigError(f"{source}: zero_mean_unit_variance per channel (axes {list(axes)}) is not supported; "
                                  f"im2im z-scores all channels together (axes including 'channel')")
            config.append({"class_path": "monai.transforms.NormalizeIntensityd", "init_args": {"keys": ["IM"]}})
            normalization = "zscore"
        else:
            raise ConfigError(f"{source}: input step {name!r} is not supported; im2im applies scale_range, "
                              f"zero_mean_unit_variance, fixed_zero_mean_unit_variance, then {', '.join(POINTWISE_INPUT_STEPS)}")
    return config, normalization, pointwise


def _channel_axis_only(kwargs: dict[str, Any], name: str, source: str) -> None:
    """Refuse values given along an axis other than the channel axis (im2im's statistics are per channel at most)."""
    if kwargs.get("axis") not in (None, "channel", "c"):
        raise ConfigError(f"{source}: {name} along axis {kwargs['axis']!r} is not supported; expected one value, or one "
                          f"per channel (axis 'channel')")


def _fixed(stats: MeanStd) -> dict[str, Any]:
    return {"class_path": "im2im_core.data.normalization.TrainingSetNormalized",
            "init_args": {"keys": ["IM"], "mean": list(stats.mean), "std": list(stats.std)}}


def output_function(steps: Sequence[dict[str, Any]], source: str, what: str = "output") -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-pixel function of a package's ``what`` (output or input) steps, on ``(B, C, *spatial)``.

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
            _channel_axis_only(kwargs, name, source)
            threshold = _as_tuple(kwargs["threshold"])
            functions.append(lambda x, t=threshold: (x > _shaped(t, x)).to(torch.uint8))
        elif name == "clip":
            if kwargs.get("min_percentile") is not None or kwargs.get("max_percentile") is not None:
                raise ConfigError(f"{source}: clip by percentiles needs the whole {what}; not supported")
            functions.append(lambda x, lo=kwargs.get("min"), hi=kwargs.get("max"): torch.clamp(x, lo, hi))
        elif name == "scale_linear":
            _channel_axis_only(kwargs, name, source)
            gain, offset = _as_tuple(kwargs.get("gain", 1.0)), _as_tuple(kwargs.get("offset", 0.0))
            functions.append(lambda x, g=gain, o=offset: x * _shaped(g, x) + _shaped(o, x))
        elif name == "ensure_dtype":
            dtype = getattr(torch, str(kwargs.get("dtype", "float32")), None)
            if dtype is None:
                raise ConfigError(f"{source}: ensure_dtype {kwargs.get('dtype')!r} is not a known dtype")
            functions.append(lambda x, d=dtype: x.to(d))
        else:
            raise ConfigError(f"{source}: {what} step {name!r} is not supported (it needs statistics of the whole {what} "
                              f"or another tensor); im2im applies sigmoid, softmax, binarize, clip, scale_linear, ensure_dtype")

    def apply(output: torch.Tensor) -> torch.Tensor:
        for function in functions:
            output = function(output)
        return output

    return apply


def _shaped(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """Values as a ``(1, C or 1, 1, ...)`` tensor that broadcasts over ``like``."""
    return torch.tensor(values, dtype=torch.float32, device=like.device).reshape(1, len(values), *[1] * (like.ndim - 2))
