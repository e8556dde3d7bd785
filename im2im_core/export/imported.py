"""``PackagedModel``: any local bioimage.io model package as an im2im framework, for prediction.

The package's network (TorchScript, ONNX or PyTorch state dict) becomes the window network;
its valid sizes give the window; its input steps become the run's ``data.normalize`` (see
:func:`package_config`), its per-pixel output steps :meth:`PackagedModel.postprocess`. So a
package predicts through the same streaming windows, TTA, OME-Zarr output and 5D handling as
a checkpoint, whoever made it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from im2im_core.errors import ConfigError, DataError
from im2im_core.export.processing import normalize_config, output_function
from im2im_core.export.weights import WEIGHT_FORMATS, OnnxNetwork
from im2im_core.frameworks.base import Im2ImFramework, OptimizerGroup
from im2im_core.inference.checkpoint import build_model
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.tta import Symmetry, undo_symmetry
from im2im_core.inference.windows import MAX_AUTO_ALIGN

#: Names a package's description file has.
DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: Fixed windows for packages whose sizes do not fit im2im's automatic windows.
TARGET_WINDOW = {2: 256, 3: 64}


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a bioimage.io package: a ``.zip``, a folder with an rdf.yaml, or the rdf.yaml itself."""
    path = Path(path)
    if path.is_dir():
        return any((path / name).is_file() for name in DESCRIPTION_NAMES)
    return path.suffix == ".zip" or path.name.endswith(DESCRIPTION_NAMES)


def _description_source(path: Path) -> Path:
    if path.is_dir():
        return next(path / name for name in DESCRIPTION_NAMES if (path / name).is_file())
    return path


def load_description(package: str | Path) -> Any:
    """The package's model description, converted to format 0.5, its files checked; nothing is downloaded.

    bioimage.io's validation looks up every URL a description names (citations, links): those
    are declared known here, so that it does not; a weights file given by URL is refused.

    Raises
    ------
    DataError
        If the package is missing or does not validate (a missing file, wrong axes...),
        naming the package and the first problems.
    """
    path = Path(package)
    if not path.exists():
        raise DataError(f"model package not found: {path}")
    try:
        from bioimageio.spec import ValidationContext, load_model_description
    except ImportError:
        raise ConfigError("bioimage.io packages need bioimageio.spec: pip install 'im2im[export]'") from None
    source = _description_source(path)
    try:
        with ValidationContext(perform_io_checks=True, known_files={url: None for url in _urls(source)}):
            description = load_model_description(source, format_version="latest")
    except ValueError as exc:  # bioimageio.spec's report: a header, then one line per problem and alternative
        raise DataError(f"model package {path} is not a valid bioimage.io model: {first_problem(str(exc))}") from None
    except Exception as exc:  # a description that is not YAML, a zip that is not one
        raise DataError(f"model package {path} cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                        ) from None
    for name, weights in description.weights:
        if weights is not None and str(weights.source).startswith(("http://", "https://")):
            raise DataError(f"model package {path}: its {name} weights are at {weights.source}; im2im reads local "
                            f"packages only (nothing is downloaded): download the weights into the package")
    return description


def _urls(source: Path) -> set[str]:
    """The http(s) addresses a description names (read as text: from the zip for a package)."""
    import re
    import zipfile

    try:
        if source.suffix == ".zip":
            with zipfile.ZipFile(source) as archive:
                name = next((n for n in archive.namelist() if n.endswith(DESCRIPTION_NAMES)), None)
                text = archive.read(name).decode(errors="replace") if name else ""
        else:
            text = source.read_text(errors="replace")
    except (OSError, zipfile.BadZipFile):
        return set()
    return {url.rstrip("'\",)") for url in re.findall(r"https?://[^\s'\"]+", text)}


def first_problem(report: str) -> str:
    """The most telling line of bioimageio.spec's validation report: a missing file, else the first problem."""
    lines = [line.replace("Value error, ", "").strip(" -:") for line in report.splitlines()[1:]]
    lines = [line for line in lines if line]
    missing = [line for line in lines if "does not point to an existing file" in line]
    if missing:
        field, _, reason = missing[0].partition(": ")
        return f"{field.split('.')[0]} {field.split('.')[1] if '.' in field else ''}: {reason}".replace("  ", " ")
    return "; ".join(lines[:2])[:400] or "not a model description"


def _only(tensors: Any, what: str, package: Path) -> Any:
    if len(tensors) != 1:
        raise ConfigError(f"model package {package} has {len(tensors)} {what} tensors; im2im runs models with one input "
                          f"and one output")
    return tensors[0]


class _Pointwise(nn.Module):
    """A per-pixel function of a package's steps as a module (the input steps after its normalization)."""

    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The function of ``x``, as float32 (the network's input type)."""
        return self.function(x).float()


class _Reordered(nn.Module):
    """The package's network on im2im's ``(B, C, *spatial)`` windows, whatever its own axis order."""

    def __init__(self, network: nn.Module, to_package: list[int], from_package: list[int],
                 batch: bool, channel: bool, out_channel: bool, single: bool) -> None:
        super().__init__()
        self.network, self.to_package, self.from_package = network, to_package, from_package
        self.batch, self.channel, self.out_channel, self.single = batch, channel, out_channel, single

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, C, *spatial)`` to outputs ``(B, C_out, *spatial)``, one at a time where the package's
        batch axis is missing or fixed at 1.
        """
        if not self.channel:
            x = x[:, 0]
        if self.batch and not self.single:
            return self._run(x)
        outputs = [self._run(window[None] if self.batch else window) for window in x]
        return torch.cat(outputs) if self.batch else torch.stack(outputs)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x.permute(self.to_package)).permute(self.from_package)
        if not self.out_channel:
            out = out.unsqueeze(1 if self.batch else 0)
        return out


class PackagedModel(Im2ImFramework):
    """A bioimage.io model package as a framework (prediction only).

    Parameters
    ----------
    package : str
        A package ``.zip``, its unpacked folder, or its ``rdf.yaml``.
    weight_format : {"pytorch_state_dict", "torchscript", "onnx"}, optional
        Default: the first the package has of pytorch_state_dict (when its architecture
        imports), torchscript, onnx.
    roi_size : list of int, optional
        Window; default: automatic when the package's sizes fit im2im's windows, else a valid
        size near 256 (2D) or 64 (3D) pixels a side.
    overlap : float
        Fraction of a window shared with each neighbour.
    sw_batch_size : int
        Windows computed together.
    """

    def __init__(self, package: str, weight_format: str | None = None, roi_size: list[int] | None = None,
                 overlap: float = 0.25, sw_batch_size: int = 4) -> None:
        path = Path(package)
        description = load_description(path)
        tensor_in = _only(description.inputs, "input", path)
        tensor_out = _only(description.outputs, "output", path)
        self.input_axes = [_axis_kind(axis, path) for axis in tensor_in.axes]
        output_axes = [_axis_kind(axis, path) for axis in tensor_out.axes]
        space = [kind for kind in self.input_axes if kind not in ("batch", "channel")]
        if len(space) not in (2, 3):
            raise ConfigError(f"model package {path}: input axes {self.input_axes}: expected 2 or 3 space axes (y, x or "
                              f"z, y, x), with batch and channel axes optional")
        space_out = set(output_axes) - {"channel"}
        if len(output_axes) != len(set(output_axes)) or space_out != set(self.input_axes) - {"channel"}:
            raise ConfigError(f"model package {path}: output axes {output_axes} do not match input axes {self.input_axes}; "
                              f"im2im runs networks whose output has the input's space axes")
        _check_output_axes(tensor_out, tensor_in, path)
        roi = roi_size if roi_size is not None else _window(tensor_in, path)
        super().__init__(spatial_dims=len(space), roi_size=roi, overlap=overlap, sw_batch_size=sw_batch_size)
        self.package, self.letters = str(path), "".join(kind.upper() for kind in space)
        self.weight_format, loaded = _first_loading(description, _weight_formats(description, weight_format, path), path)
        single = any(str(a.type) == "batch" and getattr(a, "size", None) == 1 for a in tensor_in.axes)
        network = _reordering(loaded, self.input_axes, output_axes, single)
        self.output = output_function([_step(s) for s in tensor_out.postprocessing], f"model package {path}")
        self.input_steps = [_step(s) for s in tensor_in.preprocessing]
        pointwise = self.normalization()[2]
        self.network = nn.Sequential(_Pointwise(output_function(pointwise, f"model package {path}", "input")), network) \
            if pointwise else network
        self.input_channels = _channel_count(tensor_in)
        self.name = str(description.name)
        # A package im2im made names its framework's config (the state dict's architecture); that framework's
        # whole-image step (EmbedSeg's clustering) and TTA inverse then apply as they do from the checkpoint.
        self.maker = _im2im_framework(description, path) if not tensor_out.postprocessing or all(
            _step(s)["id"] == "ensure_dtype" for s in tensor_out.postprocessing) else None

    def window_network(self) -> nn.Module:
        """The package's network, on ``(B, C, *spatial)`` windows."""
        return self.network

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """The package's output steps (sigmoid, binarize, scale_linear...)."""
        return self.output(output)

    def whole_image_postprocess(self) -> Postprocess | None:
        """The whole-image step of the framework that made the package (im2im packages), else None."""
        return self.maker.whole_image_postprocess() if self.maker is not None else None

    def tta_inverse(self, output: torch.Tensor, symmetry: Symmetry) -> torch.Tensor:
        """The making framework's inverse (vector channels turned), else every channel as a scalar map."""
        return self.maker.tta_inverse(output, symmetry) if self.maker is not None else undo_symmetry(output, symmetry)

    def normalization(self) -> tuple[list[dict[str, Any]], Any, list[dict[str, Any]]]:
        """The ``data.normalize`` config, ``predict``'s ``normalize`` and the per-pixel rest of the package's input
        steps (:func:`~im2im_core.export.processing.normalize_config`); the window network applies the rest.
        """
        return normalize_config(self.input_steps, f"model package {self.package}", "channel" in self.input_axes)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Packages are for prediction; fine-tuning them is not supported."""
        raise ConfigError(f"model package {self.package} can predict but not be trained by im2im fit")

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """None: see :meth:`training_step`."""
        return []


def _im2im_framework(description: Any, package: Path) -> Any:
    """The framework (no weights) of a package written by ``im2im export``, or None for other packages."""
    weights = description.weights.pytorch_state_dict
    architecture = getattr(weights, "architecture", None) if weights is not None else None
    if architecture is None or str(getattr(architecture, "import_from", "")) != "im2im_core.export.weights":
        return None
    model = dict(architecture.kwargs).get("model")
    try:
        return build_model(yaml.safe_dump({"model": model}), f"model package {package}").eval()
    except ConfigError:  # its framework's plugin is not installed: the raw outputs, as any package
        return None


def _check_output_axes(tensor: Any, inputs: Any, package: Path) -> None:
    """Refuse output axes im2im's windows cannot stitch: a halo, or a size that is not the input's."""
    scales = {str(axis.id): float(getattr(axis, "scale", 1.0) or 1.0) for axis in inputs.axes if str(axis.type) == "space"}
    for axis in tensor.axes:
        if str(axis.type) != "space":
            continue
        halo, size = getattr(axis, "halo", 0) or 0, axis.size
        if not hasattr(size, "tensor_id"):
            raise ConfigError(f"model package {package}: output axis {axis.id!r} has a fixed size {size}; im2im runs "
                              f"networks whose output has the input's size (a size referring to the input axis)")
        offset = getattr(size, "offset", 0) or 0
        rescaled = float(getattr(axis, "scale", 1.0) or 1.0) != scales.get(str(size.axis_id), 1.0)
        if halo or offset or rescaled:
            raise ConfigError(f"model package {package}: output axis {axis.id!r} has a halo ({halo}), a size offset "
                              f"({offset}) or another scale than its input axis; im2im runs networks whose output has "
                              f"the input's size and pixel grid")


def _axis_kind(axis: Any, package: Path) -> str:
    kind = str(axis.type)
    if kind in ("batch", "channel"):
        return kind
    if kind == "space" and str(axis.id).lower() in ("z", "y", "x"):
        return str(axis.id).lower()
    raise ConfigError(f"model package {package}: axis {axis.id!r} of type {kind!r} is not supported; expected batch, "
                      f"channel and space axes z, y, x")


def _channel_count(tensor: Any) -> int:
    for axis in tensor.axes:
        if str(axis.type) == "channel":
            return len(axis.channel_names)
    return 1


def _window(tensor: Any, package: Path) -> list[int] | None:
    """A window of valid sizes: automatic when the sizes fit im2im's aligned windows, else fixed."""
    sizes = []
    for axis in tensor.axes:
        if str(axis.type) != "space":
            continue
        size = axis.size
        if isinstance(size, int):
            sizes.append((size, 0))
        elif hasattr(size, "min") and hasattr(size, "step"):
            sizes.append((int(size.min), int(size.step)))
        else:
            raise ConfigError(f"model package {package}: input axis {axis.id!r} has its size from another tensor; "
                              f"expected a fixed size or min and step")
    # automatic windows have sides that are multiples of MAX_AUTO_ALIGN: valid when every such side is
    if all(step and MAX_AUTO_ALIGN % step == 0 and low % step == 0 and low <= MAX_AUTO_ALIGN for low, step in sizes):
        return None
    target = TARGET_WINDOW[len(sizes)]
    return [low if not step else low + max(0, -(-(target - low) // step)) * step for low, step in sizes]


def _weight_formats(description: Any, chosen: str | None, package: Path) -> list[str]:
    """The formats to try, in order: ``chosen`` alone, else pytorch_state_dict, torchscript, onnx as the package has them."""
    available = [name for name in WEIGHT_FORMATS if getattr(description.weights, name, None) is not None]
    others = [name for name, value in description.weights if value is not None and name not in WEIGHT_FORMATS]
    if chosen is not None:
        if chosen not in available:
            raise ConfigError(f"model package {package} has no {chosen} weights; it has {', '.join(available + others)}")
        return [chosen]
    if not available:
        raise ConfigError(f"model package {package} has weights in {', '.join(others)} only; im2im runs "
                          f"{', '.join(WEIGHT_FORMATS)}")
    return available


def _first_loading(description: Any, formats: list[str], package: Path) -> tuple[str, nn.Module]:
    """The first of ``formats`` that loads (a state dict whose architecture does not import falls back to the next)."""
    failures = []
    for weight_format in formats:
        try:
            return weight_format, _load_network(description, weight_format, package)
        except DataError as exc:
            failures.append(str(exc))
    raise DataError("; ".join(failures))


def _load_network(description: Any, weight_format: str, package: Path) -> nn.Module:
    weights = getattr(description.weights, weight_format)
    try:
        if weight_format == "torchscript":
            return torch.jit.load(io.BytesIO(weights.get_reader().read()), map_location="cpu").eval()
        if weight_format == "onnx":
            return OnnxNetwork(weights.get_reader().read())
        from bioimageio.core.backends.pytorch_backend import load_torch_model

        return load_torch_model(weights, load_state=True).eval()
    except (ConfigError, DataError):
        raise
    except Exception as exc:
        raise DataError(f"model package {package}: its {weight_format} weights ({weights.source}) cannot be loaded: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _reordering(network: nn.Module, input_axes: list[str], output_axes: list[str], single: bool) -> nn.Module:
    """``network`` wrapped to take ``(B, C, *spatial)``; the network itself when its axes are already so.

    ``single``: the package's batch axis is fixed at 1, so windows go through one at a time.
    """
    im2im_order = ["batch", "channel", *[kind for kind in input_axes if kind not in ("batch", "channel")]]
    if input_axes == im2im_order and output_axes == im2im_order and not single:
        return network
    present_in = [kind for kind in im2im_order if kind in input_axes]
    to_package = [present_in.index(kind) for kind in input_axes]
    from_package = [output_axes.index(kind) for kind in im2im_order if kind in output_axes]
    return _Reordered(network, to_package, from_package, "batch" in input_axes, "channel" in input_axes,
                      "channel" in output_axes, single)


def _step(step: Any) -> dict[str, Any]:
    """A processing step as a plain ``{"id", "kwargs"}`` mapping."""
    dumped = step.model_dump(mode="json", exclude_none=True) if hasattr(step, "model_dump") else dict(step)
    return {"id": dumped.get("id") or dumped.get("name"), "kwargs": dumped.get("kwargs") or {}}


def package_config(package: str | Path) -> str:
    """The run config (YAML text) that ``im2im predict --model PACKAGE`` starts from.

    The model is a :class:`PackagedModel`; ``data.dims`` are the package's space axes (with C
    for several input channels) and ``data.normalize`` its input steps. Options on the command
    line come after it and win.
    """
    model = PackagedModel(str(Path(package).resolve()))
    normalize = model.normalization()[0]
    dims = ("C" if model.input_channels > 1 else "") + model.letters
    config = {"model": {"class_path": f"{PackagedModel.__module__}.PackagedModel",
                        "init_args": {"package": str(Path(package).resolve())}},
              "data": {"dims": dims, "normalize": normalize, "patch_size": [64] * model.spatial_dims},
              "trainer": {"logger": False}}
    return yaml.safe_dump(config, sort_keys=False)
