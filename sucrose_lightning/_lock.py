"""The one-writer-per-scenario lock: ``flock`` on ``.sucrose.lock`` plus a lease for shared filesystems.

``flock`` is exclusive on one machine only: two jobs on two nodes sharing an NFS or Lustre
workspace may both get it. Next to it, the holder keeps a **lease**: ``.sucrose.lease``,
created exclusively (``O_CREAT | O_EXCL``), naming its host, pid and SLURM job, and
refreshed by a heartbeat thread every :data:`LEASE_INTERVAL` seconds. Another process
(on any node) that finds a lease refuses to start, naming the holder, unless the lease is
stale: its heartbeat is older than :data:`MISSED_BEATS` intervals, or it names a dead pid
on this very host. A stale lease is reclaimed with a warning.

Every file here is opened without following symlinks: a symlink planted under the lock's or
the lease's name is refused with an error naming it, and nothing it points to is written.

Only :class:`~sucrose_lightning.store.CheckpointStore` takes the lock (its writer sessions);
every other module asks the store.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, ClassVar

from ._atomic import describe, ensure_dir, refuse_symlink
from .errors import CheckpointError, LockError, SucroseWarning
from .layout import Layout

__all__ = ["LEASE_FILE", "LEASE_INTERVAL", "MISSED_BEATS", "Lease", "ScenarioLock", "hostname", "read_lease"]

log = logging.getLogger("sucrose_lightning")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the lock is a no-op
    fcntl = None  # type: ignore[assignment]

LEASE_FILE = ".sucrose.lease"
#: Seconds between two heartbeats of a lease (``SUCROSE_LEASE_INTERVAL`` overrides it).
LEASE_INTERVAL = float(os.environ.get("SUCROSE_LEASE_INTERVAL", "30"))
#: A lease whose heartbeat is older than this many intervals is stale (its holder is gone).
MISSED_BEATS = 4
_LEASE_BYTES = 1024  # fixed-size records: a heartbeat rewrites in place, never truncates
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _now() -> float:
    """The clock leases are judged by (tests move it forward instead of waiting)."""
    return time.time()


def hostname() -> str:
    """This machine's name as the lock and the run history record it.

    ``_SUCROSE_TEST_HOSTNAME`` overrides it: test-only, to simulate two nodes on one machine.
    """
    return os.environ.get("_SUCROSE_TEST_HOSTNAME") or socket.gethostname()


def job_id() -> str | None:
    """The SLURM job id (``<array job>_<task>`` for array jobs), or ``None`` outside SLURM."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _open_nofollow(path: Path, flags: int, what: str) -> int:
    """``os.open`` that refuses symlinks and anything but a regular file, naming ``path``."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            refuse_symlink(path, what)
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(
            f"{what} {path} is not a regular file; remove it (sucrose will not write to it)"
        )
    return fd


def _describe_holder(info: dict[str, Any]) -> str:
    job = f", SLURM job {info['job']}" if info.get("job") else ""
    return f"pid {info.get('pid')} on host {info.get('host')}{job} (started {info.get('started')})"


# --------------------------------------------------------------------------- the lease


def read_lease(path: Path) -> dict[str, Any] | None:
    """The lease's record, ``None`` when there is none; ``{}`` when it cannot be parsed.

    Raises:
        CheckpointError: ``path`` is a symlink or not a regular file.
    """
    try:
        fd = _open_nofollow(path, os.O_RDONLY, "lease file")
    except FileNotFoundError:
        return None
    try:
        raw = os.pread(fd, _LEASE_BYTES, 0)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        info = json.loads(raw.decode().strip() or "null")
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return {"mtime": st.st_mtime}
    info["mtime"] = st.st_mtime
    return info


def lease_is_stale(info: dict[str, Any], now: float | None = None) -> bool:
    """Whether a lease's holder is gone: a dead pid on this host, or no heartbeat for ``MISSED_BEATS``.

    Examples:
        >>> lease_is_stale({"host": hostname(), "pid": os.getpid(), "beat": time.time()})
        False
        >>> lease_is_stale({"host": "elsewhere", "pid": 1, "beat": 0.0, "interval": 30})
        True
    """
    now = _now() if now is None else now
    if info.get("host") == hostname() and not _pid_alive(info.get("pid")):
        return True
    interval = info.get("interval")
    interval = float(interval) if isinstance(interval, (int, float)) and interval > 0 else LEASE_INTERVAL
    beat = max(float(info.get("beat") or 0.0), float(info.get("mtime") or 0.0))
    return now - beat > interval * MISSED_BEATS


class Lease:
    """An exclusively created lease file refreshed by a heartbeat thread (see the module docs).

    Args:
        path: the lease file (``<ckpts_dir>/.sucrose.lease``).
        scenario: the scenario's name, for messages.
        interval: seconds between heartbeats.
    """

    def __init__(self, path: Path, scenario: str, interval: float | None = None) -> None:
        self.path = path
        self.scenario = scenario
        self.interval = LEASE_INTERVAL if interval is None else interval
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        info = {
            "host": hostname(),
            "pid": os.getpid(),
            "job": job_id(),
            "scenario": self.scenario,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "beat": time.time(),
            "interval": self.interval,
            "token": self.token,
        }
        data = json.dumps(info).encode()
        return data + b" " * max(_LEASE_BYTES - len(data), 0)

    def acquire(self) -> None:
        """Create the lease, reclaiming a stale one with a warning.

        Raises:
            LockError: a live holder (on any host) has it; the message names it.
            CheckpointError: a symlink or a non-file sits under the lease's name.
        """
        for _ in range(3):
            try:
                fd = _open_nofollow(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "lease file")
            except FileExistsError:
                self._reclaim_or_refuse()
                continue
            try:
                os.pwrite(fd, self._record(), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._thread = threading.Thread(target=self._beat, name="sucrose-lease", daemon=True)
            self._thread.start()
            return
        raise LockError(f"could not take the lease {self.path} of scenario {self.scenario!r}; try again")

    def _reclaim_or_refuse(self) -> None:
        info = read_lease(self.path)
        if info is None:
            return  # gone meanwhile: try again
        ago = _now() - float(info.get("beat") or 0)
        if not lease_is_stale(info):
            raise LockError(
                f"scenario {self.scenario!r} is already being trained by {_describe_holder(info)} "
                f"(lease file {self.path}, heartbeat {ago:.0f} s ago); "
                "wait for it to finish or stop it"
            )
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}.{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = read_lease(aside) or {}
        if moved.get("token") != info.get("token"):  # someone else reclaimed first: put theirs back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                os.unlink(aside)
            raise LockError(f"scenario {self.scenario!r} was just taken by {_describe_holder(moved)}")
        with contextlib.suppress(OSError):
            os.unlink(aside)
        warnings.warn(
            f"reclaimed the lease of scenario {self.scenario!r} left by {_describe_holder(info)}, "
            f"which is no longer running (no heartbeat for {ago:.0f} s)",
            SucroseWarning,
            stacklevel=6,
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                fd = _open_nofollow(self.path, os.O_RDWR, "lease file")
            except (OSError, CheckpointError) as err:
                self._lose(f"it cannot be opened ({err})")
                return
            try:
                current = json.loads(os.pread(fd, _LEASE_BYTES, 0).decode().strip() or "null") or {}
                if current.get("token") != self.token:
                    self._lose(f"it now names {_describe_holder(current)}")
                    return
                os.pwrite(fd, self._record(), 0)
                os.fsync(fd)
            except (OSError, ValueError, AttributeError) as err:
                log.warning("could not refresh the lease %s: %s", self.path, err)
            finally:
                os.close(fd)

    def _lose(self, why: str) -> None:
        self.lost = True
        log.error("lost the lease %s of scenario %r: %s", self.path, self.scenario, why)
        warnings.warn(
            f"lost the lease {self.path} of scenario {self.scenario!r}: {why}", SucroseWarning, stacklevel=2
        )

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still this holder's."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with contextlib.suppress(OSError, CheckpointError):
            info = read_lease(self.path)
            if info is not None and info.get("token") == self.token:
                os.unlink(self.path)


# --------------------------------------------------------------------------- the lock


class ScenarioLock:
    """One training (saving) process per scenario: ``flock`` on ``.sucrose.lock`` plus the lease.

    The OS drops the ``flock`` when its process dies, so a killed run never blocks the next one
    on the same machine; the lease covers other machines sharing the folder (see the module
    docs). Holding is per process: several scenario objects of one name in one process share it.

    Attributes:
        fresh: whether the last :meth:`acquire` took the lock for this process (no other holder
            in this process had it): every earlier run recorded in the folder has ended then.

    Raises:
        LockError: on :meth:`acquire`, when another live process holds it (names pid, host,
            SLURM job, start time).
    """

    _held: ClassVar[dict[str, tuple[int, int, Lease]]] = {}  # lock path -> (fd, holders, lease)
    _guard = threading.Lock()

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        folder = Path(os.path.realpath(layout.ckpts_dir))  # the folder may be a symlink; the file not
        self.path = str(folder / layout.lock_path.name)
        self.lease_path = folder / LEASE_FILE
        self.held = False
        self.fresh = False
        #: The run this session records (a :class:`~sucrose_lightning.status.RunHandle`), if any.
        self.run: Any = None

    def acquire(self) -> None:
        """Take the lock (no-op if this object already holds it)."""
        if self.held:
            return
        with self._guard:
            if self.path in self._held:
                fd, count, lease = self._held[self.path]
                self._held[self.path] = (fd, count + 1, lease)
                self.held, self.fresh = True, False
                return
            ensure_dir(self.layout.ckpts_dir)
            fd = self._take_flock()
            lease = Lease(self.lease_path, self.layout.name)
            try:
                lease.acquire()
            except BaseException:
                _drop(fd, None)  # clears the holder's details written under the flock
                raise
            self._held[self.path] = (fd, 1, lease)
            self.held, self.fresh = True, True

    def _take_flock(self) -> int:
        try:
            fd = _open_nofollow(Path(self.path), os.O_RDWR | os.O_CREAT, "lock file")
        except OSError as err:
            raise CheckpointError(f"cannot open lock file {self.path}: {describe(err)}") from None
        if fcntl is None:  # pragma: no cover
            return fd
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
                stacklevel=5,
            )
        info = {
            "pid": os.getpid(),
            "host": hostname(),
            "job": job_id(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "scenario": self.layout.name,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return fd

    def release(self) -> None:
        """Give the lock back (clears the holder's details, removes the lease)."""
        if not self.held:
            return
        self.held = False
        with self._guard:
            fd, count, lease = self._held.get(self.path, (-1, 0, None))
            if count > 1:
                self._held[self.path] = (fd, count - 1, lease)  # type: ignore[assignment]
                return
            self._held.pop(self.path, None)
            _drop(fd, lease)

    @classmethod
    def _release_all(cls) -> None:
        with cls._guard:
            for fd, _, lease in cls._held.values():
                _drop(fd, lease)
            cls._held.clear()


def _drop(fd: int, lease: Lease | None) -> None:
    if lease is not None:
        lease.release()
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_holder(fd: int, default: str = "another process") -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode() or "null")
    except (OSError, ValueError):
        return default
    if not isinstance(info, dict):
        return default
    return _describe_holder(info)


atexit.register(ScenarioLock._release_all)
