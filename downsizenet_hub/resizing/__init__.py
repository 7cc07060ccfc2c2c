"""The resizing core, torch-free parts first: :mod:`.config` (a DownsizeNet's architecture)."""
