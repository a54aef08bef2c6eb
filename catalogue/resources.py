"""Where the project's data folders (migrations, mappings, ontologies) are found.

In a source checkout or an editable install they sit beside the package; a regular install
places them under ``<prefix>/share/cancer-imaging-catalogue`` (see ``data_files`` in setup.cfg).
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_SHARE = Path(sys.prefix) / "share" / "cancer-imaging-catalogue"


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (e.g. ``"migrations"``); raise if it is missing."""
    for base in (_PACKAGE_ROOT, _SHARE):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found beside the package or in {_SHARE}")
