"""im2im plugin: CycleGAN and UTOM (saliency-constrained CycleGAN) for unpaired image-to-image translation."""

__version__ = "0.1.0"
