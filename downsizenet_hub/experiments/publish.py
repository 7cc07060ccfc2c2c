"""Publishing a trained resizer, one way for ``pretrain --publish`` and the study."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from downsizenet_hub import hub
from downsizenet_hub.atomic import publish_folder

__all__ = ["publish_resizer"]


def publish_resizer(
    net: nn.Module,
    record: hub.TrainingRecord,
    *,
    name: str | None = None,
    folder: Path | None = None,
    force: bool = False,
) -> None:
    """Publish a trained resizer with its record, one way for ``pretrain --publish`` and the
    study: to the local hub as ``name`` (replacing it only with ``force``), or into ``folder`` in
    the hub layout, written beside it and renamed into place so that a folder that exists is
    always complete."""
    if (name is None) == (folder is None):
        raise ValueError("publish_resizer needs exactly one of name= or folder=.")
    if name is not None:
        hub.publish(net, name, record=record, force=force)
        return
    assert folder is not None
    publish_folder(
        folder, lambda staging: hub.save_pretrained(net, staging, record=record, name=str(folder))
    )
