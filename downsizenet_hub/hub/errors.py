"""Errors of the hub that are not plain bad input (those are ValueError / TypeError)."""

from __future__ import annotations


class HubAccessError(ConnectionError):
    """The Hugging Face Hub cannot be used now: offline mode, no network, no token, refused."""
