"""im2im plugin: EmbedSeg instance segmentation of touching and non-convex objects, 2D and 3D."""

__version__ = "0.1.0"
