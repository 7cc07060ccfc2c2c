"""Resizer names: ``namespace/name``, the same shape as a Hugging Face repo id.

A reference to the Hugging Face Hub carries an explicit prefix, as in timm:
``hf-hub:owner/name[@revision]``. A plain ``namespace/name`` is always local (see :mod:`.refs`).

A name becomes a path under the local hub, so it is validated before any file is touched: exactly
two parts, each 1 to 96 characters of ``A-Z a-z 0-9 . _ -``, starting and ending with a letter or
digit, with no ``..`` or ``--`` (the Hugging Face Hub forbids both). Absolute paths, empty parts and
traversal therefore never reach the file system.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
# A git revision as the Hugging Face Hub accepts it: a branch, tag or commit, no spaces or "..".
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


#: The prefix that sends a reference to the Hugging Face Hub (timm's convention).
HF_HUB_PREFIX = "hf-hub:"


class HubRef(NamedTuple):
    """A parsed ``namespace/name[@revision]``; ``revision`` is None for the default branch."""

    namespace: str
    name: str
    revision: str | None

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid ``namespace/name``, or None when it is."""
    if not isinstance(name, str):
        return f"a resizer name must be a string, got {type(name).__name__}"
    parts = name.split("/")
    if len(parts) != 2:
        return f"{name!r} is not of the form 'namespace/name'"
    for part in parts:
        if not part:
            return f"{name!r} has an empty part"
        if ".." in part or "--" in part:
            return f"{name!r} contains '..' or '--'"
        if not _PART.fullmatch(part):
            return (
                f"{name!r} has a part outside [A-Za-z0-9._-] (1-96 characters, starting and "
                "ending with a letter or digit)"
            )
    return None


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid ``namespace/name``; raise ValueError saying why not."""
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"invalid resizer name: {problem}.")
    assert isinstance(name, str)
    return name


def hub_name(name: object) -> HubRef:
    """``namespace/name`` validated once, as the :class:`HubRef` code below passes around (no
    revision); ValueError saying why not."""
    namespace, _, rest = validate_name(name).partition("/")
    return HubRef(namespace, rest, None)


def hf_hub_part(ref: str) -> str | None:
    """``owner/name[@revision]`` of an ``hf-hub:`` reference; None for any other reference."""
    return ref[len(HF_HUB_PREFIX) :] if ref.startswith(HF_HUB_PREFIX) else None


def parse_ref(ref: str, revision: str | None = None) -> HubRef:
    """Split ``namespace/name[@revision]`` (``hf-hub:`` prefix allowed); an explicit ``revision``
    argument may not contradict it.

    Raises ValueError when the name or the revision is malformed.
    """
    ref = ref.removeprefix(HF_HUB_PREFIX)
    base, at, inline = ref.partition("@")
    if at:
        if not inline:
            raise ValueError(f"invalid resizer reference {ref!r}: empty revision after '@'.")
        if revision is not None and revision != inline:
            raise ValueError(
                f"resizer reference {ref!r} names revision {inline!r} but revision={revision!r} "
                "was also given."
            )
        revision = inline
    name = hub_name(base)
    if revision is not None and (not _REVISION.fullmatch(revision) or ".." in revision):
        raise ValueError(f"invalid revision {revision!r} in resizer reference {ref!r}.")
    return name._replace(revision=revision)
