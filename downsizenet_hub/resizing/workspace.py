"""Temporaries a resizer keeps from one inference call to the next (issue 28).

glibc's default malloc adapts its thresholds to what the process has freed so far, so whether a
resize's large temporaries (the grid of texture blocks or the rows gathered around the anchor
rows, the pooled features, a sigmoid head's coefficients, and for half-precision images the
gathered taps) come from memory the process already holds, or are mapped afresh and
page-faulted in on every call, depends on the process's history: the ``downsizenet`` command
avoids it by keeping freed memory (:mod:`downsizenet_hub.allocator`), but a library user gets
glibc's defaults. A :class:`Workspace` keeps those temporaries alive between calls instead, so
the second call of a shape writes into the memory of the first, whatever the allocator does.
The buffers made late in a call (a sigmoid head's coefficients, made after the texture branch's
maps are freed) also keep glibc from trimming the top of its heap at the end of each call:
without one, 2 of 5 fresh processes fetched 32 MiB afresh on every call at 513->179, batch 8
(``benchmarks/page_faults.py``).

Where it is used, and why only there:

* without autograd only: tensors saved for a backward pass must not be overwritten by the next
  call, so training allocates afresh;
* on the CPU only: CUDA's caching allocator already reuses device memory, and a buffer shared
  between streams would need their synchronisation;
* never for what a call returns: the output is always a new tensor;
* per thread: two threads resizing with one module get separate buffers.

Buffers are keyed by role, shape, dtype and device; each role keeps its
:data:`SHAPES_PER_ROLE` most recent keys per thread (a pipeline alternating two shapes keeps
both). ``resizer.release_workspace()`` drops them all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch

#: Shapes kept per role and thread: the training and validation shapes of a pipeline, say.
SHAPES_PER_ROLE = 2

_Key = tuple[Any, ...]


class Workspace:
    """Reusable temporaries of inference calls, per thread (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # thread id -> role -> (shape, dtype, device) -> tensor, most recent last
        self._threads: dict[int, dict[str, OrderedDict[_Key, torch.Tensor]]] = {}

    @staticmethod
    def applies(like: torch.Tensor) -> bool:
        """Whether calls on tensors like ``like`` use a workspace: no autograd, on the CPU, and
        not while scripting, tracing, compiling or exporting (those want plain graphs)."""
        return (
            not torch.is_grad_enabled()
            and like.device.type == "cpu"
            and not torch.jit.is_scripting()
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting()
        )

    def buffer(self, role: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device for ``role``,
        the same memory as the last call's of that key; None where :meth:`applies` says no."""
        if not self.applies(like):
            return None
        key = (tuple(shape), like.dtype, like.device)
        ident = threading.get_ident()
        with self._lock:
            roles = self._threads.setdefault(ident, {})
            kept = roles.setdefault(role, OrderedDict())
            tensor = kept.get(key)
            if tensor is not None:
                kept.move_to_end(key)
                return tensor
        # A plain tensor even under inference_mode, so that a later no_grad call may write it.
        with torch.inference_mode(False):
            tensor = torch.empty(shape, dtype=like.dtype, device=like.device)
        with self._lock:
            kept[key] = tensor
            while len(kept) > SHAPES_PER_ROLE:
                kept.popitem(last=False)
        return tensor

    def release(self) -> None:
        """Drop every kept buffer (of every thread)."""
        with self._lock:
            self._threads.clear()

    @property
    def nbytes(self) -> int:
        """Bytes held, all threads together."""
        with self._lock:
            return sum(
                t.numel() * t.element_size()
                for roles in self._threads.values()
                for kept in roles.values()
                for t in kept.values()
            )

    # A copied or pickled module starts with an empty workspace (buffers are not state).
    def __deepcopy__(self, memo: dict[int, Any]) -> Workspace:
        return Workspace()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
