"""downsizenet-hub: learned image downsizing (DownsizeNet) for PyTorch vision pipelines."""

from downsizenet_hub.resizer import DownsizeNet, DownsizeNetConfig

__version__ = "0.1.0"

__all__ = ["DownsizeNet", "DownsizeNetConfig", "__version__"]
