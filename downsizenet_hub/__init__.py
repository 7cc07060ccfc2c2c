"""downsizenet-hub: learned image downsizing (DownsizeNet) for PyTorch vision pipelines."""

from downsizenet_hub.resizer import DownsizeNet, DownsizeNetConfig
from downsizenet_hub.wrap import with_resizer

__version__ = "0.1.0"

__all__ = ["DownsizeNet", "DownsizeNetConfig", "__version__", "with_resizer"]
