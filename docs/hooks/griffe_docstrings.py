"""A griffe extension for the API reference: the package's docstrings use Sphinx roles
(``:func:`name```) and doctest examples under ``Example:``, which Markdown would print as they
are; here a role becomes a code span and such an example a Google-style ``Examples:`` section,
whose ``>>>`` lines mkdocstrings renders as code. The docstrings themselves stay unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|const):`~?\.?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:\n(?=\s*>>>)", re.MULTILINE)


def plain(text: str) -> str:
    """The docstring ``text`` with its Sphinx roles as code spans and its doctests as examples."""
    return _EXAMPLE.sub(r"\1Examples:\n", _ROLE.sub(r"`\1`", text))


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
