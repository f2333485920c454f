"""Lazy re-exports for package __init__s: `import hh` (or hh.edge) costs nothing, and a name
is imported from its module on first use. This is what keeps `hh.edge` free of TensorFlow
while `hh.train` still works. stdlib only."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str | tuple[str, str]]) -> tuple[Callable, Callable, list[str]]:
    """(__getattr__, __dir__, __all__) for a package serving `exports`: public name -> module,
    or (module, attribute) where the name differs from the module's."""

    def getattr_(name: str):
        try:
            target = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attribute = target if isinstance(target, tuple) else (target, name)
        return getattr(importlib.import_module(module), attribute)

    def dir_() -> list[str]:
        return sorted(exports)

    return getattr_, dir_, sorted(exports)
