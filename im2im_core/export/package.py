"""``export_package``: a checkpoint of ``im2im fit`` becomes a bioimage.io model package (format 0.5).

The package holds the framework's window network in up to three weight formats, the run's
normalization and the framework's per-pixel post-processing as the spec's steps, test tensors
computed by im2im from a real image, a cover, and a README with the run's config. Nothing is
downloaded: every field is filled from the checkpoint, its run folder and the command line.
"""

from __future__ import annotations

import getpass
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from monai.transforms import Compose

from im2im_core import __version__
from im2im_core.axes import spatial_of
from im2im_core.data.normalization import TRAINING_STATISTICS, MeanStd
from im2im_core.errors import ConfigError, DataError
from im2im_core.export.processing import postprocessing_steps, preprocessing_steps
from im2im_core.export.valid_sizes import AxisSizes, measure_valid_sizes
from im2im_core.export.weights import WEIGHT_FORMATS, WeightFormat, write_weights
from im2im_core.inference.checkpoint import (
    build_datamodule,
    build_model,
    check_fits,
    read_checkpoint,
    run_config,
    training_statistics,
)
from im2im_core.inference.outputs import atomic_output
from im2im_core.inference.postprocess import Postprocess
from im2im_core.keys import IMAGE

#: Largest side of the test tensors, per spatial dimensions of the network (a few seconds to test).
TEST_SIDE = {2: 256, 3: 64}
#: im2im has no paper or permanent address of its own yet; packages cite the toolbox it continues.
IM2IM_CITATIONS = [
    {"text": "Sonneck et al. MMV_Im2Im: an open-source microscopy machine vision toolbox for image-to-image "
             "transformation. GigaScience 2024", "doi": "10.1093/gigascience/giad120"},
]


@dataclass
class ExportOptions:
    """What the command line adds to a package; every field has a default.

    Attributes
    ----------
    weights : tuple of str
        Weight formats: ``pytorch_state_dict``, ``torchscript``, ``onnx``.
    sample : str, optional
        Image the test tensors are cut from; default: the run's first validation image.
    name, description : str, optional
        Default: from the framework and the run folder.
    authors : list of str
        Default: the current user's login name.
    license : str
        An SPDX identifier.
    tags : list of str
    """

    weights: tuple[WeightFormat, ...] = WEIGHT_FORMATS
    sample: str | None = None
    name: str | None = None
    description: str | None = None
    authors: list[str] = field(default_factory=list)
    license: str = "CC-BY-4.0"
    tags: list[str] = field(default_factory=list)


@dataclass
class _Exported:
    """What export knows of a run once it is read: the model, its normalization and the sample."""

    framework: Any
    checkpoint: Path
    config_text: str
    global_step: int | None
    network: Any
    image: np.ndarray
    sample: str
    pixel_sizes: dict[str, float | None]
    letters: str
    normalization: Compose
    steps: list[dict[str, Any]]
    restore: MeanStd | None


def _sample_image(datamodule: Any, sample: str | None) -> tuple[np.ndarray, str, dict[str, float | None], str]:
    """The test image, channel-first ``(C, *spatial)`` float32, its source path, pixel sizes and dims."""
    if sample is None:
        try:
            datamodule.setup("validate")
        except Exception as exc:
            raise DataError(f"the run's validation images cannot be read ({str(exc).splitlines()[0]}); give an image "
                            f"with --sample") from None
        samples = datamodule.val_samples or datamodule.train_samples
        if not samples:
            raise DataError("the run has no validation image to make test tensors from; give one with --sample")
        sample = samples[0][IMAGE]
    if not Path(sample).is_file() and not Path(sample).is_dir():
        raise DataError(f"sample image not found: {sample}")
    image = datamodule.make_reader().read(str(sample))
    array, dims = image.numpy(), image.dims
    if "T" in dims:
        array, dims = array[0], dims.replace("T", "")
    if "C" not in dims:
        array, dims = array[None], "C" + dims
    return array.astype(np.float32), str(sample), image.physical_pixel_sizes, dims


def _valid_crop(image: np.ndarray, sizes: list[AxisSizes], sample: str) -> np.ndarray:
    """The centre of ``image`` ``(C, *spatial)`` cut to the largest valid size up to :data:`TEST_SIDE`."""
    cut = [slice(None)]
    cap = TEST_SIDE[len(sizes)]
    for length, axis in zip(image.shape[1:], sizes):
        if length < axis.min:
            raise DataError(f"sample {sample} has {length} pixels along an axis, but the network needs at least "
                            f"{axis.min}; give a larger image with --sample")
        side = axis.min + (min(length, max(cap, axis.min)) - axis.min) // axis.step * axis.step
        start = (length - side) // 2
        cut.append(slice(start, start + side))
    return image[tuple(cut)]


def _preprocessed(image: np.ndarray, normalization: Compose) -> np.ndarray:
    """``image`` ``(C, *spatial)`` through the run's own input normalization (what the package's steps describe)."""
    normalized = normalization({IMAGE: image})[IMAGE]
    return np.asarray(normalized.cpu().numpy() if isinstance(normalized, torch.Tensor) else normalized, np.float32)


def _pixel_steps(framework: Any, out_channels: int) -> tuple[Postprocess | None, list[str]]:
    """The framework's per-pixel post-processing for the package, and what the README must say of it."""
    notes = []
    describe = getattr(framework, "pixel_postprocess", None)  # optional member of the contract (docs/plugins.md)
    pixelwise = describe(out_channels) if callable(describe) else None
    whole = framework.whole_image_postprocess()
    if whole is not None or pixelwise is None:
        notes.append(f"The output is the network's raw output: {type(framework).__name__}'s post-processing "
                     f"({'a step on the whole image, such as clustering' if whole is not None else 'its own code'}) has "
                     f"no bioimage.io equivalent. `im2im predict --model PACKAGE` applies it, with the plugin of "
                     f"`{type(framework).__module__.split('.')[0]}` installed.")
        return None, notes
    if pixelwise.argmax:
        notes.append("The output holds one probability per class (softmax); the label of a pixel is the channel with "
                     "the largest value (im2im's `predict` takes that argmax).")
        pixelwise = Postprocess(pixelwise.activation)
    return pixelwise, notes


def _cover(image: np.ndarray, output: np.ndarray, path: Path) -> None:
    """Input and output side by side (middle plane of 3D), first channel, each scaled to 0..255."""
    from skimage.io import imsave

    def plane(array: np.ndarray) -> np.ndarray:
        first = np.asarray(array[0, 0], np.float32)
        while first.ndim > 2:
            first = first[first.shape[0] // 2]
        low, high = np.percentile(first, (0.5, 99.5))
        return np.clip((first - low) / max(high - low, 1e-12), 0, 1)

    left, right = plane(image), plane(output)
    gap = np.ones((left.shape[0], max(2, left.shape[1] // 64)), np.float32)
    imsave(path, (np.concatenate([left, gap, right], axis=1) * 255).astype(np.uint8), check_contrast=False)


def _validation_metric(checkpoint: Path, step: int | None) -> str:
    """The run's validation metrics at the checkpoint's step (its CSV log), as a sentence.

    Looked up only in the run folder ``im2im fit`` writes (``<run>/checkpoints/<name>.ckpt``,
    logs under ``<run>``); a checkpoint elsewhere has no log to read.
    """
    import csv

    if checkpoint.resolve().parent.name != "checkpoints":
        return "no validation metric: the checkpoint is not in the checkpoints folder of an im2im run"
    logs = sorted(checkpoint.resolve().parent.parent.glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    for log in reversed(logs):
        with log.open() as handle:
            rows = [row for row in csv.DictReader(handle) if any(k.startswith("val_") and v for k, v in row.items())]
        at_step = [row for row in rows if step is not None and row.get("step", "").isdigit() and int(row["step"]) <= step]
        if at_step:
            last = at_step[-1]
            values = ", ".join(f"{k} {float(v):.4g}" for k, v in last.items() if k.startswith("val_") and v)
            return f"{values} (step {last.get('step', '?')}, on the run's validation images; from {log.name})"
    return "no validation metric was logged by this run up to the checkpoint's step"


def _readme(framework: Any, config_text: str, sample: str, metric: str, notes: list[str], failed: dict[str, str]) -> str:
    lines = [f"# {type(framework).__name__} model exported by im2im {__version__}", "",
             "Made with im2im, the microscopy image-to-image toolbox. Predict with any bioimage.io consumer, or with "
             "`im2im predict --model PACKAGE --data.predict_path DIR`.", "",
             "## Validation", "", f"- {metric}", f"- test tensors: a crop of `{Path(sample).name}`", ""]
    if notes:
        lines += ["## Output", "", *[f"- {note}" for note in notes], ""]
    if failed:
        lines += ["## Weight formats left out", "", *[f"- {name}: {why}" for name, why in failed.items()], ""]
    lines += ["## Training config", "", "```yaml", config_text.strip(), "```", ""]
    return "\n".join(lines)


def _axes(letters: str, channel_names: list[str], sizes: list[AxisSizes] | None, reference: str | None,
          pixel_sizes: dict[str, float | None]) -> list[dict[str, Any]]:
    axes: list[dict[str, Any]] = [{"type": "batch"}, {"type": "channel", "channel_names": channel_names}]
    for position, letter in enumerate(letters):
        axis: dict[str, Any] = {"type": "space", "id": letter.lower()}
        if sizes is not None:
            axis["size"] = {"min": sizes[position].min, "step": sizes[position].step}
        else:
            axis["size"] = {"tensor_id": reference, "axis_id": letter.lower()}
        scale = pixel_sizes.get(letter)
        if scale:
            axis.update(unit="micrometer", scale=float(scale))
        axes.append(axis)
    return axes


def export_package(checkpoint: str | Path, output: str | Path, options: ExportOptions | None = None,
                   overwrite: bool = False) -> Path:
    """Write the bioimage.io model package (a ``.zip``) of ``checkpoint`` to ``output``.

    Raises
    ------
    ConfigError
        When the run's normalization or the framework's output has no bioimage.io equivalent,
        or no weight format could be written.
    DataError
        When the checkpoint or the sample image cannot be read.
    """
    options = options or ExportOptions()
    unknown = [f for f in options.weights if f not in WEIGHT_FORMATS]
    if unknown or not options.weights:
        raise ConfigError(f"weights {','.join(unknown) or '(none)'}: expected some of {', '.join(WEIGHT_FORMATS)}")
    output, checkpoint = Path(output), Path(checkpoint)
    if output.suffix != ".zip":
        raise ConfigError(f"output {output}: a bioimage.io package is a .zip file; give a path ending in .zip")
    if output.exists() and not overwrite:
        raise ConfigError(f"output {output} exists; pass --overwrite to replace it")
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise ConfigError("export needs bioimageio.spec: pip install 'im2im[export]'") from None
    contents = read_checkpoint(checkpoint)
    config_text = run_config(contents)
    if config_text is None:
        raise ConfigError(f"checkpoint {checkpoint} holds no im2im run config (it was not written by im2im fit)")
    framework = build_model(config_text, f"checkpoint {checkpoint}")
    check_fits(framework, contents["state_dict"], checkpoint, f"checkpoint {checkpoint}")
    framework.load_state_dict(contents["state_dict"])
    framework.eval()
    datamodule = build_datamodule(config_text, f"checkpoint {checkpoint}")
    saved = next((entry for entry in contents.values() if isinstance(entry, dict) and TRAINING_STATISTICS in entry), None)
    if saved is not None:
        datamodule.load_state_dict(saved)  # the training-set statistics, as Lightning restores them for predict
    transforms = datamodule.image_normalize_steps()
    restore = training_statistics(contents) if framework.output_in_input_units() else None
    if framework.output_in_input_units() and (restore is None or len(transforms) != 1):
        raise ConfigError(f"checkpoint {checkpoint}: {type(framework).__name__} gives outputs in the input's units, but "
                          f"only the inverse of a lone TrainingSetNormalized has a bioimage.io step; train with it (as "
                          f"the im2im-n2v presets do) to export this model")
    image, sample, pixel_sizes, dims = _sample_image(datamodule, options.sample)
    letters = spatial_of(dims)
    source = f"checkpoint {checkpoint}"
    steps = preprocessing_steps(transforms, ["channel", *(letter.lower() for letter in letters)], source)
    network = framework.window_network().eval()
    if len(letters) != framework.spatial_dims:
        raise DataError(f"sample {sample} has spatial axes {letters!r} but the network is {framework.spatial_dims}D")
    run = _Exported(framework, checkpoint, config_text, contents.get("global_step"), network, image, sample, pixel_sizes,
                    letters, Compose(transforms), steps, restore)
    measured = measure_valid_sizes(network, image.shape[0], framework.spatial_dims, f"sample {sample}")
    example = _valid_crop(image, _trace_sizes(measured, image.shape[1:]), sample)[None]
    with tempfile.TemporaryDirectory(prefix="im2im_export_") as staging_name:
        staging = Path(staging_name)
        written, failed = write_weights(network, torch.from_numpy(_preprocessed(example[0], run.normalization)[None]),
                                        staging, options.weights)
        sizes, refused = _sizes_every_format_takes(network, written, measured, image.shape[0])
        failed.update(refused)
        for weight_format in refused:
            written.pop(weight_format).unlink()
        if not written:
            raise ConfigError(f"no weight format could be written: {'; '.join(f'{k}: {v}' for k, v in failed.items())}")
        _write_package(run, options, staging, sizes, written, failed, overwrite, output)
    return output


def _trace_sizes(measured: list[AxisSizes], lengths: tuple[int, ...]) -> list[AxisSizes]:
    """Sizes of the example the traced formats are made from: multiples of 64 where the axis and the network
    allow (a network that pads inputs itself then traces without its padding branch), else the measured ones.
    """
    return [AxisSizes(64, 64) if length >= 64 and 64 >= a.min and (64 - a.min) % a.step == 0 else a
            for a, length in zip(measured, lengths)]


def _sizes_every_format_takes(network: Any, written: dict[str, Path], measured: list[AxisSizes],
                              in_channels: int) -> tuple[list[AxisSizes], dict[str, str]]:
    """The first valid sizes (the measured ones, then multiples of 2, 4, ... 64) that every written
    format computes right at ``min``, ``min + step`` and ``min + 2 step``; formats that take none are refused.
    """
    from im2im_core.export.weights import load_written, takes_sizes

    modules = {name: load_written(name, path, network) for name, path in written.items() if name != "pytorch_state_dict"}
    candidates = [measured, *([AxisSizes(max(a.min, s) + (-max(a.min, s)) % s, s) for a in measured]
                              for s in (2, 4, 8, 16, 32, 64))]
    candidates = [c for c in candidates if all(new.step % old.step == 0 for new, old in zip(c, measured))]
    reasons: dict[str, str] = {}
    for candidate in candidates:
        trials = [tuple(a.min + k * a.step for a in candidate) for k in range(3)]
        reasons = {name: why for name, module in modules.items()
                   if (why := takes_sizes(module, network, in_channels, trials)) is not None}
        if not reasons:
            return candidate, {}
    # no candidate suits every traced format: keep the measured sizes, drop those formats
    return measured, {name: f"traced, it {why} (the network's own code takes them)" for name, why in reasons.items()}


def _write_package(run: _Exported, options: ExportOptions, staging: Path, sizes: list[AxisSizes], written: dict[str, Path],
                   failed: dict[str, str], overwrite: bool, output: Path) -> None:
    """Test tensors, cover, README and ``rdf.yaml`` beside the weights in ``staging``, then the zip."""
    raw_input = _valid_crop(run.image, sizes, run.sample)[None]
    with torch.inference_mode():
        raw = run.network(torch.from_numpy(_preprocessed(raw_input[0], run.normalization)[None])).float()
        if run.restore is not None:
            mean, std = run.restore.shaped(raw.ndim - 1, raw[0])
            raw = raw * std[None] + mean[None]
    pixelwise, notes = _pixel_steps(run.framework, raw.shape[1])
    final = raw if pixelwise is None else pixelwise.pointwise(raw[0])[None]
    final_array = final.cpu().numpy()
    binary = pixelwise is not None and pixelwise.threshold is not None
    np.save(staging / "test_input.npy", raw_input)
    np.save(staging / "test_output.npy", final_array.astype(np.uint8 if binary else np.float32))
    _cover(raw_input, final_array, staging / "cover.png")
    (staging / "README.md").write_text(_readme(run.framework, run.config_text, run.sample,
                                               _validation_metric(run.checkpoint, run.global_step), notes, failed))
    rdf = _description(run, options, sizes, raw_input, final_array, pixelwise, written, binary)
    (staging / "package").mkdir()
    for path in staging.iterdir():
        if path.is_file():
            shutil.move(path, staging / "package" / path.name)
    (staging / "package" / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    _save_package(staging / "package" / "rdf.yaml", output, overwrite)


def _description(run: _Exported, options: ExportOptions, sizes: list[AxisSizes], raw_input: np.ndarray,
                 final: np.ndarray, pixelwise: Postprocess | None, written: dict[str, Path], binary: bool) -> dict[str, Any]:
    """The ``rdf.yaml`` of the package, as a plain mapping (format 0.5)."""
    framework, checkpoint, letters, pixel_sizes = run.framework, run.checkpoint, run.letters, run.pixel_sizes
    model_section = _offline(yaml.safe_load(run.config_text)["model"])
    in_names = [f"channel{i}" for i in range(raw_input.shape[1])]
    out_names = [f"channel{i}" for i in range(final.shape[1])]
    output_data: dict[str, Any] = {"type": "uint8", "values": [0, 1]} if binary else {"type": "float32"}
    weights: dict[str, Any] = {}
    torch_version = torch.__version__.split("+")[0]
    for weight_format, path in written.items():
        entry: dict[str, Any] = {"source": path.name}
        if weight_format == "pytorch_state_dict":
            entry.update(architecture={"callable": "window_network", "import_from": "im2im_core.export.weights",
                                       "kwargs": {"model": model_section}}, pytorch_version=torch_version)
        elif weight_format == "torchscript":
            entry.update(pytorch_version=torch_version)
        else:
            import onnx

            opsets = onnx.load(str(path), load_external_data=False).opset_import
            entry.update(opset_version=int(next(o.version for o in opsets if o.domain in ("", "ai.onnx"))))
        weights[weight_format] = entry
    run_name = checkpoint.resolve().parent.parent.name
    name = options.name or f"im2im {type(framework).__name__} {run_name}"
    cited = getattr(type(framework), "citations", None)  # optional member of the contract (docs/plugins.md)
    cite = [*(cited() if callable(cited) else []), *IM2IM_CITATIONS]
    return {
        "format_version": "0.5.4", "type": "model", "name": name[:128],
        "description": options.description or f"{type(framework).__name__} model trained with im2im ({run_name})",
        "authors": [{"name": author} for author in (options.authors or [_login_name()])],
        "cite": cite, "license": options.license, "tags": ["im2im", *options.tags],
        "documentation": "README.md", "covers": ["cover.png"], "version": "0.1.0",
        "inputs": [{"id": "input", "axes": _axes(letters, in_names, sizes, None, pixel_sizes),
                    "test_tensor": {"source": "test_input.npy"}, "data": {"type": "float32"},
                    "preprocessing": run.steps}],
        "outputs": [{"id": "output", "axes": _axes(letters, out_names, None, "input", pixel_sizes),
                     "test_tensor": {"source": "test_output.npy"}, "data": output_data,
                     "postprocessing": postprocessing_steps(pixelwise, run.restore)}],
        "weights": weights,
    }


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "unknown (give --authors)"


def _offline(node: Any) -> Any:
    """The model config with pretrained-weight options off, so that loading the architecture downloads nothing
    (the package's weights replace them anyway).
    """
    if isinstance(node, list):
        return [_offline(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _offline(value) for key, value in node.items()}
    for key in ("encoder_weights", "weights"):
        if isinstance(fixed.get(key), str):
            fixed[key] = None
    if fixed.get("pretrained") is True:
        fixed["pretrained"] = False
    return fixed


def _save_package(rdf: Path, output: Path, overwrite: bool) -> None:
    """Validate the description (offline: no file is fetched) and zip it atomically to ``output``."""
    from bioimageio.spec import ValidationContext, load_model_description, save_bioimageio_package

    from im2im_core.export.imported import first_problem

    try:
        with ValidationContext(perform_io_checks=True):
            description = load_model_description(rdf, format_version="0.5.4")
    except ValueError as exc:  # a name, license or author that bioimage.io refuses
        raise ConfigError(f"the package does not validate: {first_problem(str(exc))}") from None
    try:
        zipped = save_bioimageio_package(description, output_path=rdf.parent.parent / f"{rdf.parent.name}.zip")
    except OSError as exc:  # the staging folder's file system: full or not writable
        raise DataError(f"cannot write {output}: {exc.strerror or exc} (nothing was left there)") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output, overwrite) as partial:
        shutil.move(zipped, partial)
