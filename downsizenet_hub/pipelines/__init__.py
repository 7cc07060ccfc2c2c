"""Task pipelines: modules that resize, run a task network, and return ``{"loss", "preds"}``."""
