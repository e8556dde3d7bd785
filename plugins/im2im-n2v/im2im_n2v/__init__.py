"""im2im-n2v: self-supervised denoising with Noise2Void, N2V2 and structN2V, as an im2im plugin."""

__version__ = "0.1.0"
