"""Where registries find their entries: LOKA's own modules, then ``$LOKA_PLUGINS``.

Both registries — methods (`loka.methods.registry`) and measurements (`loka.verify.registry`) —
import their files through `import_modules`, so one environment variable adds a method or a
measurement without touching LOKA: ``LOKA_PLUGINS=package.module,other.module``.

Example:
    >>> import_modules(("json",))     # LOKA's own list; plugins follow
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

from loka.errors import LokaError


def plugin_modules() -> list[str]:
    return [m.strip() for m in os.environ.get("LOKA_PLUGINS", "").split(",") if m.strip()]


def import_modules(own: Sequence[str]) -> None:
    """Import ``own`` (a missing one is a bug: it raises), then every plugin (a one-line error)."""
    for module in own:
        importlib.import_module(module)
    for module in plugin_modules():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise LokaError(f"LOKA_PLUGINS names {module!r}, which cannot be imported ({exc})") from None
