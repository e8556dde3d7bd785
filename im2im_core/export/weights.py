"""The three weight formats of an exported package: PyTorch state dict, TorchScript, ONNX.

The state dict's architecture is :func:`window_network` with the run's ``model`` section as
its keyword argument: bioimageio.core (or anyone with im2im installed) rebuilds the framework
from that config and loads the weights into its window network. TorchScript and ONNX are
traced from the network in eval mode and need no im2im to run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from im2im_core.errors import ConfigError

WeightFormat = Literal["pytorch_state_dict", "torchscript", "onnx"]
WEIGHT_FORMATS: tuple[WeightFormat, ...] = ("pytorch_state_dict", "torchscript", "onnx")
#: ONNX operator set written; onnxruntime of the last years runs it.
ONNX_OPSET = 17


def window_network(model: dict[str, Any]) -> nn.Module:
    """The window network of the framework a run config's ``model`` section describes (no weights loaded).

    This is the ``architecture`` of an exported package's ``pytorch_state_dict`` weights.
    """
    import yaml

    from im2im_core.inference.checkpoint import build_model

    return build_model(yaml.safe_dump({"model": model}), "the package's architecture kwargs").window_network()


def _traced(network: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # size checks in skip connections, fixed per trace
        return torch.jit.trace(network, example, check_trace=False)


def write_weights(network: nn.Module, example: torch.Tensor, folder: Path,
                  formats: tuple[WeightFormat, ...]) -> tuple[dict[str, Path], dict[str, str]]:
    """Write ``network`` (eval mode) in each of ``formats`` under ``folder``.

    ``example`` is one input batch ``(1, C, *spatial)``; traced formats keep batch and spatial
    sizes dynamic. Returns the files written and, for each format that could not be written,
    why (one line).
    """
    network = network.eval()
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for weight_format in formats:
        path = folder / {"pytorch_state_dict": "weights.pt", "torchscript": "weights_torchscript.pt",
                         "onnx": "weights.onnx"}[weight_format]
        try:
            if weight_format == "pytorch_state_dict":
                torch.save(network.state_dict(), path)
            elif weight_format == "torchscript":
                _traced(network, example).save(str(path))
            else:
                _write_onnx(network, example, path)
        except Exception as exc:  # each exporter fails in its own way; the format is then left out, and said so
            path.unlink(missing_ok=True)
            failed[weight_format] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            continue
        written[weight_format] = path
    return written, failed


def _write_onnx(network: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX with dynamic batch and spatial axes.

    The TorchScript-based exporter (``dynamo=False``) is used first: it is deprecated in favour
    of the torch.export one but takes MONAI's networks, whose skip connections compare sizes,
    with dynamic sizes and in a fraction of the time; the torch.export one is the fall-back.
    """
    spatial = {axis: f"s{axis}" for axis in range(2, example.ndim)}
    dynamic = {"input": {0: "batch", **spatial}, "output": {0: "batch", **spatial}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(network, (example,), str(path), input_names=["input"], output_names=["output"],
                              dynamic_axes=dynamic, opset_version=ONNX_OPSET, dynamo=False)
        except Exception:
            dims = {axis: torch.export.Dim.AUTO for axis in dynamic["input"]}
            torch.onnx.export(network, (example,), str(path), input_names=["input"], output_names=["output"],
                              dynamic_shapes=(dims,), dynamo=True, opset_version=max(ONNX_OPSET, 18))


def load_written(weight_format: WeightFormat, path: Path, network: nn.Module) -> nn.Module:
    """The module a written weights file runs (``network`` itself for a state dict)."""
    if weight_format == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval()
    if weight_format == "onnx":
        return OnnxNetwork(path)
    return network


def takes_sizes(module: nn.Module, reference: nn.Module, in_channels: int, sizes: list[tuple[int, ...]]) -> str | None:
    """Why ``module`` does not compute what ``reference`` does at each of ``sizes`` (batches of 1 and 2), or None.

    A traced network keeps the branches its example took: one that pads inputs to a multiple
    of its strides, traced on a multiple, fails or differs on other sizes.
    """
    generator = torch.Generator().manual_seed(0)
    for size in sizes:
        for batch in (1, 2):
            x = torch.rand((batch, in_channels, *size), generator=generator)
            try:
                with torch.inference_mode():
                    expected, got = reference(x), module(x)
            except Exception as exc:  # noqa: BLE001 (the reason goes into the package's README)
                return f"fails on inputs of size {size}: {type(exc).__name__}"
            scale = float(expected.abs().max()) or 1.0
            if got.shape != expected.shape or float((got - expected).abs().max()) > 1e-3 * scale:
                return f"differs from the network on inputs of size {size}"
    return None


class OnnxNetwork(nn.Module):
    """An ONNX model run by onnxruntime, seen as a ``torch.nn.Module`` (CPU, float32).

    Parameters
    ----------
    model : str, Path or bytes
        The ``.onnx`` file, or its contents.
    """

    def __init__(self, model: str | Path | bytes) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("onnx weights need onnxruntime: pip install 'im2im[export]'") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __deepcopy__(self, memo: dict) -> OnnxNetwork:
        return self  # a session is immutable and cannot be copied; prediction's optimized copy shares it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the session on ``x`` (any device, any memory layout); the output on ``x``'s device."""
        import numpy as np

        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0]).to(x.device)
