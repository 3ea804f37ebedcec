"""Asynchronous saves: a snapshot on the caller's thread, the crash-safe write on a background one.

The training thread pays only for :meth:`Snapshot.take`: every tensor's storage is copied into a
reusable host buffer (pinned where CUDA is present, so device-to-host copies run at full
speed), containers are rebuilt around the copies, and the caller continues. One background
thread then streams the snapshot through the store's atomic write (temporary file, fsync,
rename, folder fsync), so a file appears under its final name only once it is complete, and
``last_ckpt()``, ``keep_last``, top-k pruning and ``sucrose ls/check`` never see it before.

At most one save is in flight: the next one waits for it first (logged at DEBUG) and reuses
its buffers. A failed background write is kept and raised as a
:class:`~sucrose_lightning.errors.CheckpointError` naming the file by the next
:meth:`AsyncSaver.wait` (the next save, the end of ``fit``, ``ssc.close()``).

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .store import CheckpointStore

__all__ = ["AsyncSaver", "Snapshot", "mmap_kwds"]

log = logging.getLogger("sucrose_lightning")

_ATOMS = (str, bytes, int, float, complex, bool, type(None), type(Ellipsis), range, slice)


class Snapshot:
    """Copies of a checkpoint's tensors in host buffers that are reused from one save to the next.

    Storages shared by several tensors (views, tied weights) are copied once and the tensors
    rebuilt as views of the copy, so the file holds exactly what ``torch.save`` of the live
    object would have written, however the live tensors change after :meth:`take` returns.

    Examples:
        >>> snap = Snapshot()
        >>> w = torch.zeros(3)
        >>> state = {"w": w, "view": w[1:], "n": 1}
        >>> copied = snap.take(state)
        >>> _ = w.add_(5)  # training goes on
        >>> copied["w"].tolist(), copied["view"].tolist(), copied["n"]
        ([0.0, 0.0, 0.0], [0.0, 0.0], 1)
        >>> copied["view"].untyped_storage().data_ptr() == copied["w"].untyped_storage().data_ptr()
        True
        >>> snap.nbytes
        12
    """

    def __init__(self) -> None:
        # nbytes -> buffers of that size (uint8), reused by the next snapshot once free
        self._pool: dict[tuple[int, bool], list[torch.Tensor]] = {}
        self._used: list[tuple[tuple[int, bool], torch.Tensor]] = []

    @property
    def nbytes(self) -> int:
        """Bytes of host memory the buffers hold (in use and free)."""
        free = sum(int(b.numel()) for bufs in self._pool.values() for b in bufs)
        return free + sum(int(b.numel()) for _, b in self._used)

    def release(self) -> None:
        """Hand the buffers of the last snapshot back for reuse (its write has finished)."""
        for key, buf in self._used:
            self._pool.setdefault(key, []).append(buf)
        self._used = []

    def clear(self) -> None:
        """Free every buffer (no save in flight)."""
        self._used, self._pool = [], {}

    def _buffer(self, nbytes: int, pin: bool) -> torch.Tensor:
        import torch

        key = (nbytes, pin)
        free = self._pool.get(key)
        buf = free.pop() if free else torch.empty(nbytes, dtype=torch.uint8, pin_memory=pin)
        self._used.append((key, buf))
        return buf

    def take(self, obj: Any) -> Any:
        """A copy of ``obj`` whose tensors live in this snapshot's buffers.

        dicts (of any subclass, with their attributes, e.g. a state dict's ``_metadata``), lists
        and tuples are rebuilt; strings and numbers are kept; any other object is deep-copied.
        """
        import torch

        storages: dict[tuple[str, int], torch.Tensor] = {}
        memo: dict[int, Any] = {}
        cuda: list[torch.device] = []

        def tensor(t: torch.Tensor) -> torch.Tensor:
            plain = type(t) in (torch.Tensor, torch.nn.Parameter) and t.layout == torch.strided
            if not plain or t.is_quantized:
                return t.detach().clone().cpu()
            src = t.untyped_storage()
            key = (str(t.device), src.data_ptr())
            copy_of = storages.get(key)
            if copy_of is None:
                nbytes = src.nbytes()
                on_cuda = t.device.type == "cuda"
                copy_of = self._buffer(nbytes, pin=on_cuda and torch.cuda.is_available())
                if nbytes:
                    raw = torch.empty(0, dtype=torch.uint8, device=t.device).set_(src)
                    copy_of.copy_(raw, non_blocking=on_cuda)
                if on_cuda and t.device not in cuda:
                    cuda.append(t.device)
                storages[key] = copy_of
            out = torch.empty(0, dtype=t.dtype)
            out.set_(copy_of.untyped_storage(), t.storage_offset(), t.size(), t.stride())
            if isinstance(t, torch.nn.Parameter):  # saved as what it is
                return torch.nn.Parameter(out, requires_grad=t.requires_grad)
            return out.requires_grad_(t.requires_grad) if t.is_leaf else out

        def walk(x: Any) -> Any:
            if isinstance(x, _ATOMS):
                return x
            if id(x) in memo:
                return memo[id(x)]
            if isinstance(x, torch.Tensor):
                out: Any = tensor(x)
            elif isinstance(x, dict):
                out = copy.copy(x)  # keeps the subclass and its attributes
                memo[id(x)] = out
                for k, v in x.items():
                    out[k] = walk(v)
            elif type(x) is list:
                out = []
                memo[id(x)] = out
                out.extend(walk(v) for v in x)
            elif type(x) is tuple:
                out = tuple(walk(v) for v in x)
            elif isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
                out = type(x)(*(walk(v) for v in x))
            else:
                out = copy.deepcopy(x)
            memo[id(x)] = out
            return out

        try:
            result = walk(obj)
        finally:
            for device in cuda:  # the non-blocking copies must land before anyone reads them
                torch.cuda.synchronize(device)
        return result


class AsyncSaver:
    """One background writer for one store: at most one save in flight, failures raised later.

    Args:
        store: the scenario's checkpoint store (its :meth:`~CheckpointStore.save` does the write).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base")
        >>> saver = AsyncSaver(ssc.store)
        >>> path = ssc.layout.ckpt_path(1)
        >>> w = torch.ones(2)
        >>> saver.save({"w": w}, path)
        >>> _ = w.add_(1)
        >>> saver.wait()
        >>> torch.load(path)["w"].tolist()
        [1.0, 1.0]
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.snapshot = Snapshot()
        self._thread: threading.Thread | None = None
        self._path: Path | None = None
        self._error: BaseException | None = None
        self._done: list[Callable[[], None]] = []
        #: Seconds the caller spent in each recent :meth:`save` (waiting for the previous write included).
        self.stalls: deque[float] = deque(maxlen=10_000)
        #: Of each stall, the seconds spent waiting for the previous write to end.
        self.waits: deque[float] = deque(maxlen=10_000)

    @property
    def in_flight(self) -> Path | None:
        """The file being written in the background, or ``None``."""
        thread = self._thread
        return self._path if thread is not None and thread.is_alive() else None

    def save(
        self, obj: Any, final: Path, reason: str = "saving a resumed run", *, background: bool = True
    ) -> None:
        """Wait for the previous write, make room for ``final``, snapshot ``obj``, write it in the background.

        Args:
            obj: what ``torch.save`` can write.
            final: the checkpoint's path.
            reason: why newer files are moved aside, if any (see :meth:`CheckpointStore.make_room`).
            background: ``False`` writes on the caller's thread, after the write in flight.

        Raises:
            CheckpointError: the previous background write failed (the message names its file);
                this save has not started. With ``background=False``, this write failed.
        """
        t0 = time.perf_counter()
        self.wait()
        waited = time.perf_counter() - t0
        self.store.make_room(final, reason)
        if not background:
            self.store.save(obj, final)
            return
        try:
            snap = self.snapshot.take(obj)
        except BaseException:
            self.snapshot.release()
            raise
        self._path, self._error = final, None
        self._thread = threading.Thread(
            target=self._write, args=(snap, final), name=f"sucrose-save {final.name}", daemon=False
        )
        self._thread.start()
        self.stalls.append(time.perf_counter() - t0)
        self.waits.append(waited)

    def _write(self, snap: Any, final: Path) -> None:
        try:
            self.store.save(snap, final)
            log.debug("background save of %s finished", final)
        except BaseException as err:  # kept for the training thread, which raises it
            self._error = err
            log.debug("background save of %s failed: %s", final, err)

    def after_write(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the caller's thread once the write in flight has finished (now if none)."""
        if self._thread is None:
            fn()
        else:
            self._done.append(fn)

    def wait(self) -> None:
        """Block until the write in flight (if any) has finished; raise its failure.

        Raises:
            CheckpointError: the background write failed; names the file and says what to do.
        """
        thread = self._thread
        if thread is not None:
            if thread.is_alive():
                log.debug("waiting for the background save of %s to finish", self._path)
            thread.join()
            self._thread = None
            self.snapshot.release()
        error, path, self._error = self._error, self._path, None
        if error is not None:
            self._done = []
            raise self.failure(error, path)
        done, self._done = self._done, []
        for fn in done:
            fn()

    @staticmethod
    def failure(error: BaseException, path: Path | None) -> CheckpointError:
        """The :class:`CheckpointError` a failed background write of ``path`` is raised as."""
        if isinstance(error, CheckpointError):  # names the file and says the others are untouched
            text = f"the background save of checkpoint {path} failed: {error}"
        else:
            where = path.parent if path is not None else "the checkpoint folder"
            text = (
                f"the background save of checkpoint {path} failed: {type(error).__name__}: {error}; that "
                f"file was not written (the previous checkpoints in {where} are untouched)"
            )
        err = CheckpointError(text + "; fix the cause and save again")
        err.__cause__ = error
        return err

    def close(self, *, quietly: bool = False) -> None:
        """Wait for the write in flight, then free the snapshot buffers; raise a failed write.

        Args:
            quietly: log a failed write at ERROR instead of raising it (another exception is on
                its way).
        """
        try:
            self.wait()
        except CheckpointError as err:
            if not quietly:
                raise
            log.error("%s", err)
        finally:
            self.snapshot.clear()


# --------------------------------------------------------------------------- loading

_REMOTE_FS = ("nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "9p", "afs")


def _fs_type(path: Path) -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux ``/proc/self/mounts``), or ``None``."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for fields in mounts:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def is_local(path: Path) -> bool:
    """Whether ``path`` is on a local filesystem (memory-mapping a file on a network one is slow).

    Examples:
        >>> is_local(Path("/proc"))
        True
    """
    kind = _fs_type(path)
    return kind is not None and kind not in _REMOTE_FS and not kind.startswith("fuse")


def mmap_kwds(folder: Path, loader_kwds: Any = None) -> dict[str, Any]:
    """``torch.load`` keywords: ``mmap=True`` where torch supports it and ``folder`` is local.

    The file is then mapped, not read: a resumed run copies each tensor once, straight from the
    page cache into the model, instead of reading the whole file into fresh memory first. A
    ``loader_kwds`` that sets ``mmap`` itself wins.

    Examples:
        >>> mmap_kwds(Path("/proc"), {"mmap": False})
        {'mmap': False}
    """
    kwds = dict(loader_kwds or {})
    if "mmap" not in kwds and _torch_has_mmap() and is_local(folder):
        kwds["mmap"] = True
    return kwds


def _torch_has_mmap() -> bool:
    """torch >= 2.1 (where ``torch.load`` gained ``mmap``)."""
    import torch

    parts = torch.__version__.split(".")[:2]
    major, minor = (int("".join(c for c in part if c.isdigit()) or 0) for part in parts)
    return (major, minor) >= (2, 1)
