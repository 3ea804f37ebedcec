"""The one-writer-per-scenario lock: ``flock`` on ``<ckpts_dir>/.sucrose.lock``.

Only :class:`~sucrose_lightning.store.CheckpointStore` takes it (its writer sessions);
every other module asks the store.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
import warnings
from typing import ClassVar

from ._atomic import describe, ensure_dir
from .errors import CheckpointError, LockError, SucroseWarning
from .layout import Layout

__all__ = ["ScenarioLock"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the lock is a no-op
    fcntl = None  # type: ignore[assignment]


class ScenarioLock:
    """One training (saving) process per scenario, via ``flock`` on ``<ckpts_dir>/.sucrose.lock``.

    The OS drops the lock when its process dies, so a killed run never blocks the next
    one; the holder's details left in the file are reported when reclaimed. Holding is
    per process: several scenario objects of one name in one process share it.

    Raises:
        LockError: on :meth:`acquire`, when another live process holds it (names pid, host,
            start time).
    """

    _held: ClassVar[dict[str, tuple[int, int]]] = {}  # lock path -> (fd, holders)
    _guard = threading.Lock()

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = os.path.realpath(layout.lock_path)
        self.held = False

    def acquire(self) -> None:
        """Take the lock (no-op if this object already holds it)."""
        if self.held or fcntl is None:
            self.held = True
            return
        with self._guard:
            if self.path in self._held:
                fd, count = self._held[self.path]
                self._held[self.path] = (fd, count + 1)
                self.held = True
                return
            ensure_dir(self.layout.ckpts_dir)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise CheckpointError(f"cannot open lock file {self.path}: {describe(err)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockError(
                    f"scenario {self.layout.name!r} is already being trained by {holder}; "
                    f"wait for it to finish or stop it (lock file: {self.path})"
                ) from None
            previous = _read_holder(fd, default="")
            if previous:
                warnings.warn(
                    f"reclaimed the lock of scenario {self.layout.name!r} left by {previous}, "
                    "which is no longer running",
                    SucroseWarning,
                    stacklevel=4,
                )
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "scenario": self.layout.name,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            self._held[self.path] = (fd, 1)
            self.held = True

    def release(self) -> None:
        """Give the lock back (clears the holder's details)."""
        if not self.held:
            return
        self.held = False
        if fcntl is None:
            return
        with self._guard:
            fd, count = self._held.get(self.path, (-1, 0))
            if count > 1:
                self._held[self.path] = (fd, count - 1)
                return
            self._held.pop(self.path, None)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                os.close(fd)

    @classmethod
    def _release_all(cls) -> None:
        with cls._guard:
            for fd, _ in cls._held.values():
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.close(fd)
            cls._held.clear()


def _read_holder(fd: int, default: str = "another process") -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode() or "null")
    except (OSError, ValueError):
        return default
    if not isinstance(info, dict):
        return default
    return f"pid {info.get('pid')} on host {info.get('host')} (started {info.get('started')})"


atexit.register(ScenarioLock._release_all)
