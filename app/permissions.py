"""Data files readable by their owner only: 0700 directories, 0600 files.

Everything the server creates is owner-only by its umask (set by the CLI, see
`OWNER_ONLY`); `tighten` puts right what an older version (or a copy) left readable by
others: the server's directories and the files in them that are the server's own. A
directory that is not the server's alone (a filesystem root, the home or working
directory) is left as it is, with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from app.config import Settings

log = logging.getLogger(__name__)

OWNER_ONLY = 0o077  # the umask: no group or other bits on anything created


def tighten(settings: Settings) -> int:
    """Make the server's directories 0700 and its files 0600; return how many changed."""
    changed = 0
    for directory in (
        settings.data_dir,
        settings.uploads_dir,
        settings.instances_dir,
        settings.logs_dir,
    ):
        if not directory.is_dir():
            continue
        if _shared(directory):
            log.warning(
                "%s is not a directory of its own: its permissions are left as they are "
                "(point the data settings at a directory only the server uses)",
                directory.resolve(),
            )
        else:
            changed += _chmod(directory, 0o700)
    for path in _own_files(settings):
        changed += _chmod(path, 0o700 if path.is_dir() else 0o600)
    if changed:
        log.info("made %d data file(s) and directories readable by their owner only", changed)
    return changed


def _own_files(settings: Settings) -> Iterator[Path]:
    data = settings.data_dir
    store = settings.sqlite_path.name
    reads = settings.read_models_path.stem
    for path in _children(data):
        name = path.name
        if name.startswith((store, reads, "webhooks.db")) or name == "jwt-secret":
            yield path
    for base in (settings.uploads_dir, settings.instances_dir):
        if not _shared(base):
            yield from _walk(base)
    for path in _children(settings.logs_dir):
        if path.name.startswith(("combined.log", "error.log")):
            yield path


def _children(directory: Path) -> Iterable[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _walk(base: Path) -> Iterator[Path]:
    for root, directories, files in os.walk(base):
        for name in (*directories, *files):
            yield Path(root) / name


def _shared(directory: Path) -> bool:
    resolved = directory.resolve()
    return resolved in (Path(resolved.anchor), Path.home().resolve(), Path.cwd().resolve())


def _chmod(path: Path, mode: int) -> int:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink() or current == mode:
            return 0
        path.chmod(mode)
    except OSError as error:
        log.warning("cannot make %s owner-only: %s", path, error.strerror or error)
        return 0
    return 1
