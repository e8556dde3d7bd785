"""im2im plugin: stain normalization (Macenko, Reinhard), stain separation and histology presets."""

__version__ = "0.1.0"
