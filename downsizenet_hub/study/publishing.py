"""Publishing a study's trained resizer to the local hub, without clobbering anyone else's.

A study replaces a published name only if the resizer there was published by the same study
command (its training record's ``command``); anything else under that name is left alone with a
one-line error saying how to free the name. Publishing identical weights and record again is a
no-op, so a second run of a study changes nothing in the hub.
"""

from __future__ import annotations

from pathlib import Path

from downsizenet_hub import hub
from downsizenet_hub.hub.local import local_path
from downsizenet_hub.tensor_hash import module_sha256


def publish_study_resizer(folder: Path, name: str, command: str) -> bool:
    """Publish the resizer saved in ``folder`` as ``name``; return False if already there as is.

    Raises:
        FileExistsError: ``name`` holds a resizer that ``command`` did not publish.
    """
    model, record = hub.load(folder)
    target = local_path(name)
    if target.exists():
        try:
            existing, existing_record = hub.load(target)
        except (OSError, TypeError, ValueError):
            existing, existing_record = None, None
        if existing is None or existing_record is None or existing_record.command != command:
            raise FileExistsError(
                f"{name} is already in the local hub and was not published by `{command}`; "
                f"remove it with `downsizenet hub remove {name}` or publish under another name."
            )
        if existing_record == record and module_sha256(existing) == module_sha256(model):
            return False
    hub.publish(model, name, record=record, force=target.exists())
    return True
