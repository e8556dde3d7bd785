"""im2im plugin: Pix2Pix conditional GANs for label-free prediction, synthesis and stain transfer."""

__version__ = "0.1.0"
