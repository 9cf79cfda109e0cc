"""Importing neonize in two halves, so that a fork server can share the first.

`import neonize` costs every child about 57 MB of Python modules (httpx, bs4,
linkpreview, PIL, magic, WhatsApp's protobuf modules) and then loads the whatsmeow Go
library, whose runtime starts threads as it loads: a process must never fork after that.
`prepare()` imports everything neonize needs except the Go library (the package module
is created without running its `__init__`, which would load it); a fork server calls it
once and forks its children from there, so they share those pages. `complete()`, in a
child, runs neonize's `__init__` for real: the Go library loads in the child only.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# Everything neonize.client imports, short of neonize._binder (the Go library).
_MODULES = (
    "magic",
    "linkpreview",
    "PIL.Image",
    "PIL.ImageSequence",
    "google.protobuf",
    "segno",
    "neonize.proto.Neonize_pb2",
    "neonize.proto.waE2E.WAWebProtobufsE2E_pb2",
    "neonize.events",
    "neonize.exc",
    "neonize.builder",
    "neonize.utils",
    "neonize.utils.platform",
    "neonize.ext.interactive_message.base",
)


def prepare() -> None:
    """Import neonize's Python side without loading its Go library (idempotent)."""
    if "neonize" not in sys.modules:
        spec = importlib.util.find_spec("neonize")
        if spec is None or spec.loader is None:
            raise ImportError("neonize is not installed")
        package = importlib.util.module_from_spec(spec)
        sys.modules["neonize"] = package
    for name in _MODULES:
        importlib.import_module(name)
    platform: Any = sys.modules["neonize.utils.platform"]
    if not hasattr(platform.generated_name, "cache_info"):
        # neonize names its library with `os.popen("uname -a")` and never waits for the
        # shell, which stays a zombie for the life of the process: ask once, here.
        platform.generated_name = functools.cache(platform.generated_name)
        platform.generated_name()


def complete() -> ModuleType:
    """Finish `import neonize` in this process (loads the Go library)."""
    package = sys.modules.get("neonize")
    if package is None:
        prepare()
        package = sys.modules["neonize"]
    if not hasattr(package, "NewClient"):
        spec = package.__spec__
        assert spec is not None and spec.loader is not None
        log: Any = sys.modules.get("neonize.utils.log")
        if log is not None and not log._thread.is_alive():
            # Forked from a process whose neonize log thread does not come along.
            log._thread = threading.Thread(target=log._worker, daemon=True)
            log._thread.start()
        spec.loader.exec_module(package)
    return package
