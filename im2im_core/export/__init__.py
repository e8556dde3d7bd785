"""Models leave and enter im2im as bioimage.io model packages (TorchScript, ONNX, PyTorch weights).

``export_package(checkpoint, "model.zip")`` writes one (``im2im export``); ``PackagedModel``
runs any local package through im2im's own prediction (``im2im predict --model PACKAGE``,
``im2im_core.predict(PACKAGE, array)``).
"""

from im2im_core.export.package import ExportOptions, export_package

__all__ = ["ExportOptions", "export_package"]
