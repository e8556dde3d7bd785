"""im2im core: protocols, plugin registry, data, built-in FCN framework, networks, inference."""

__version__ = "0.1.0"
