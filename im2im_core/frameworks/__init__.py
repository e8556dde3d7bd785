"""Training frameworks: the base classes of the framework contract (any framework, GANs) and the built-in FCN."""

from im2im_core.frameworks.adversarial import AdversarialFramework
from im2im_core.frameworks.base import Im2ImFramework, OptimizerGroup
from im2im_core.frameworks.fcn import FCN
from im2im_core.frameworks.optimizers import gan_adam

__all__ = ["FCN", "AdversarialFramework", "Im2ImFramework", "OptimizerGroup", "gan_adam"]
