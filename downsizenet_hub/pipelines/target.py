"""How a pipeline takes its resize: a :class:`~downsizenet_hub.resizing.target.ResizeTarget`
checked where the request entered (a CLI option, an experiment's data options), or ``size`` /
``scale_factor`` checked here when a pipeline is built directly (a public API call)."""

from __future__ import annotations

from typing import Any

from downsizenet_hub.resizing.target import ResizeTarget, resize_target

__all__ = ["pipeline_target", "resizer_kwargs"]


def pipeline_target(
    target: ResizeTarget | None,
    size: tuple[int, int] | None,
    scale_factor: float | None,
) -> ResizeTarget:
    """``target`` as it is (checked by the caller), else ``size`` / ``scale_factor`` checked now.

    Raises:
        ValueError: ``target`` together with ``size`` or ``scale_factor``; a bad size or scale.
    """
    if target is None:
        return resize_target(size, scale_factor)
    if size is not None or scale_factor is not None:
        raise ValueError("give a pipeline target= or size=/scale_factor=, not both.")
    return target


def resizer_kwargs(target: ResizeTarget) -> dict[str, Any]:
    """The keywords a pipeline calls its resizer with: ``size=(h, w)``, or ``scale_factor=s``
    (one number when both axes share it, as the request was written)."""
    if target.size is not None:
        return {"size": target.size}
    assert target.scale_factor is not None
    sy, sx = target.scale_factor
    return {"scale_factor": sy if sy == sx else (sy, sx)}
