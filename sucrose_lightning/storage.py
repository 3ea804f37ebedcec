"""Crash-safe checkpoint files: atomic streaming writes, integrity checks, safe loads,
random states and the one-writer-per-scenario lock.

torch is imported only inside the functions that need it, so importing this module
stays cheap for config-only use.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from .errors import (
    CheckpointError,
    DamagedCheckpointError,
    LockError,
    SucroseWarning,
    UnsafeCheckpointError,
)
from .layout import CkptFile, Layout

__all__ = [
    "ScenarioLock",
    "atomic_save",
    "check_file",
    "cleanup_temps",
    "first_valid",
    "move_aside",
    "newest_valid",
    "restore_rng",
    "rng_state",
    "torch_load",
]

log = logging.getLogger("sucrose_lightning")


# --------------------------------------------------------------------------- writing


def _serialize(obj: Any, stream: IO[bytes]) -> None:
    """Stream ``obj`` into an open file with ``torch.save`` (no in-memory copy of the bytes)."""
    import torch

    torch.save(obj, stream)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _describe(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full (ENOSPC)"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.EROFS:
        return "the filesystem is read-only"
    return err.strerror or str(err)


def _os_error_in(err: BaseException | None) -> OSError | None:
    """``err`` itself or the first OSError in its ``__cause__`` / ``__context__`` chain."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) or raise :class:`CheckpointError` naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot create checkpoint folder {folder}: {_describe(err)}") from None


def atomic_save(obj: Any, final: Path, layout: Layout) -> None:
    """Write ``obj`` to ``final`` so that ``final`` is never partial.

    The bytes are streamed into a hidden temporary file in the same folder, flushed and
    fsynced, renamed over ``final`` and the folder is fsynced. On any failure the
    temporary file is removed, whatever ``final`` held before is untouched, and a
    :class:`CheckpointError` says what failed.

    Args:
        obj: what ``torch.save`` can write.
        final: the checkpoint path.
        layout: the scenario's layout (to name the temporary file).

    Raises:
        CheckpointError: the folder cannot be created or written (disk full, permission
            denied, read-only filesystem, ...).
    """
    ensure_dir(final.parent)
    tmp = layout.temp_path(final)
    try:
        with open(tmp, "wb") as stream:
            _serialize(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, final)
    except (OSError, RuntimeError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # torch's zip writer turns a failed stream write (ENOSPC, ...) into a RuntimeError
        # ("unexpected pos ...") whose __context__ is the OSError: report the OSError
        cause = _os_error_in(err)
        if cause is None:
            raise
        raise CheckpointError(
            f"could not save checkpoint {final}: {_describe(cause)}; the previous checkpoints in "
            f"{final.parent} are untouched"
        ) from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


def cleanup_temps(layout: Layout) -> None:
    """Remove temporary files that interrupted saves of this scenario left behind.

    Call it only while holding the scenario's lock (no other writer is running).
    """
    for tmp in layout.temp_files():
        with contextlib.suppress(OSError):
            tmp.unlink()
            log.info("removed leftover temporary file %s of an interrupted save", tmp)


def move_aside(files: Iterable[CkptFile], layout: Layout, reason: str) -> list[Path]:
    """Move checkpoints into ``<ckpts_dir>/.abandoned/`` instead of overwriting them.

    Used when a run resumes from an older checkpoint than the newest one: the newer
    files would otherwise be overwritten by the new timeline. A warning names each file.
    """
    moved: list[Path] = []
    files = sorted(files, key=lambda c: c.order)
    if not files:
        return moved
    target_dir = layout.abandoned_dir
    ensure_dir(target_dir)
    for ckpt in files:
        src = Path(ckpt.path)
        dst = target_dir / src.name
        n = 1
        while dst.exists():
            dst = target_dir / f"{src.stem}.{n}{src.suffix}"
            n += 1
        try:
            os.replace(src, dst)
        except OSError as err:
            raise CheckpointError(f"could not move {src} aside to {dst}: {_describe(err)}") from None
        moved.append(dst)
    warnings.warn(
        f"{reason}: moved {len(moved)} newer checkpoint(s) of scenario {layout.name!r} aside "
        f"into {target_dir} instead of overwriting them: "
        + ", ".join(p.name for p in moved),
        SucroseWarning,
        stacklevel=3,
    )
    _fsync_dir(layout.ckpts_dir)
    return moved


# --------------------------------------------------------------------------- reading


def check_file(path: str | os.PathLike[str], verify: bool = False) -> str | None:
    """Why ``path`` is not a readable torch checkpoint, or ``None`` when it looks fine.

    The default check is cheap: the file is a zip archive (torch's format) whose directory
    lists a pickle, and that pickle (the checkpoint's structure, its small numbers and the
    random states; a few kB) passes its CRC32. ``verify=True`` also reads every tensor's
    bytes and checks their CRC32s, which catches flipped bytes anywhere.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.pt"
        >>> _ = p.write_bytes(b"")
        >>> check_file(p)
        'the file is empty'
    """
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty"
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not pickles:
                return "not a torch checkpoint (no data.pkl inside)"
            try:
                with archive.open(pickles[0]) as entry:
                    while entry.read(1 << 20):  # zipfile checks the CRC at the end of the entry
                        pass
            except zipfile.BadZipFile:
                return f"entry {pickles[0]!r} is corrupt (CRC mismatch)"
            if verify:
                bad = archive.testzip()
                if bad is not None:
                    return f"entry {bad!r} is corrupt (CRC mismatch)"
    except zipfile.BadZipFile as err:
        return f"not a complete torch checkpoint ({err}); it may be truncated"
    except (OSError, EOFError, ValueError, zipfile.LargeZipFile, NotImplementedError) as err:
        return f"cannot be read ({err})"
    return None


def newest_valid(files: Sequence[CkptFile], verify: bool = False) -> CkptFile | None:
    """The newest of ``files`` (sorted oldest first) that passes :func:`check_file`."""
    return first_valid(reversed(files), verify=verify)


def first_valid(candidates: Iterable[CkptFile], verify: bool = False) -> CkptFile | None:
    """The first of ``candidates`` (newest first) that passes :func:`check_file`.

    Each file that fails is skipped with a warning naming it (once per file and version
    of it in this process, however often it is scanned).
    """
    for ckpt in candidates:
        problem = check_file(ckpt.path, verify=verify)
        if problem is None:
            return ckpt
        warn_skipped(ckpt.path, problem)
    return None


_warned: set[tuple[str, int, int]] = set()


def warn_skipped(path: str, problem: str) -> None:
    """Log and warn that checkpoint ``path`` is skipped, once per file version."""
    try:
        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (str(path), -1, -1)
    if key in _warned:
        return
    _warned.add(key)
    log.warning("skipping checkpoint %s: %s", path, problem)
    warnings.warn(
        f"skipping unreadable checkpoint {path}: {problem}", SucroseWarning, stacklevel=4
    )


def torch_load(path: str | os.PathLike[str], loader_kwds: Mapping[str, Any] | None = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and ``map_location="cpu"`` unless given.

    Raises:
        DamagedCheckpointError: the file is damaged (truncated, corrupt, not a checkpoint):
            callers may fall back to an older one.
        UnsafeCheckpointError: an intact file that needs arbitrary pickles (the message says
            how to opt in when the file is trusted).
        CheckpointError: an intact file that still cannot be loaded (a class that cannot be
            imported, a wrong ``loader_kwds``...): the message names the file and the error.
    """
    import pickle

    import torch

    kwds = {"weights_only": True, "map_location": "cpu", **(loader_kwds or {})}
    try:
        return torch.load(path, **kwds)
    except Exception as err:
        damage = check_file(path, verify=True)
        if damage is not None:
            raise DamagedCheckpointError(f"cannot read checkpoint {path}: {damage}") from None
        first_line = str(err).splitlines()[0] if str(err) else ""
        if isinstance(err, pickle.UnpicklingError) and kwds.get("weights_only"):
            raise UnsafeCheckpointError(
                f"checkpoint {path} holds objects that weights_only=True refuses to load "
                f"({first_line}). If you trust this file, pass loader_kwds={{'weights_only': False}}"
            ) from None
        raise CheckpointError(
            f"cannot load checkpoint {path} (the file itself is intact): {type(err).__name__}: {first_line}"
        ) from err


# --------------------------------------------------------------------------- random states


def rng_state() -> dict[str, Any]:
    """Every global random state (Python, NumPy if installed, torch CPU, CUDA if available).

    Stored as tensors, lists and ints only, so ``torch.load(weights_only=True)`` reads it.
    """
    import torch

    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = [str(kind), keys.tolist(), int(pos), int(has_gauss), float(cached)]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` recorded; missing parts are left as they are."""
    import torch

    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy state saved where numpy is installed
            pass
        else:
            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# --------------------------------------------------------------------------- lock

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
                raise CheckpointError(f"cannot open lock file {self.path}: {_describe(err)}") from None
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

