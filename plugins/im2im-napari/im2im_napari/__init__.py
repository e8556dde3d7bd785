"""im2im-napari: train, predict and evaluate im2im models from napari widgets, without writing YAML.

The widgets drive im2im's own machinery (``im2im fit`` through ``im2im_cli.main.run_lightning``,
``im2im_core.inference.predict``, the metrics of ``im2im evaluate``), so every framework,
preset and plugin that is installed is usable from the viewer.
"""

__version__ = "0.1.0"
