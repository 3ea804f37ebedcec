"""A scenario's checkpoint folder: the one owner of every rule about the files in it.

:class:`CheckpointStore` answers, for both loops and the ``sucrose`` command:

* **listing**: the scenario's stamped files, of one extension or of both (``.pt`` and ``.ckpt``);
* **the resume rule**: the most advanced readable checkpoint (most epochs, then most steps),
  skipping damaged files with a warning; :meth:`~CheckpointStore.resume_target` and
  :meth:`~CheckpointStore.load_newest` are the only places that choose;
* **a new timeline**: a save at or before the newest stamp moves the newer files into
  ``.abandoned/`` (never overwriting them), :meth:`~CheckpointStore.make_room`;
* **retention**: which files ``keep_last`` and ``sucrose prune`` delete (never an unreadable
  one), :meth:`~CheckpointStore.retention`;
* **the writer's session**: the one-writer lock plus the clean-up of temporary files that
  killed saves left, :meth:`~CheckpointStore.writer`;
* **the inventory** that ``sucrose ls``, ``check`` and ``prune`` show,
  :meth:`~CheckpointStore.inventory` and :meth:`~CheckpointStore.problems`.

It imports neither torch nor lightning (loading a file imports torch when it happens).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import _atomic
from ._files import Retention, ScenarioFiles, mtime_ns, pid_alive, pid_of_temp
from ._lock import ScenarioLock
from ._warn import warn_user
from .errors import CheckpointError, DamagedCheckpointError, SucroseWarning
from .layout import CkptFile, Layout, Select, is_weights_only
from .status import RunHandle, RunHistory, RunStatus

__all__ = ["CheckpointStore", "Retention", "ScenarioFiles", "pid_alive"]

log = logging.getLogger("sucrose_lightning")


class CheckpointStore:
    """The checkpoint folder of one scenario, ``<workspace>/ckpts/<scenario>/``.

    Args:
        layout: the scenario's folders and file names.

    Examples:
        >>> import tempfile
        >>> from sucrose_lightning.config import WorkspaceSettings
        >>> store = CheckpointStore(Layout(Path(tempfile.mkdtemp()), "base", WorkspaceSettings()))
        >>> store.files(), store.resume_target(".pt")
        ([], None)
        >>> _ = store.layout.ckpts_dir.mkdir(parents=True)
        >>> _ = store.layout.ckpt_path(2).write_bytes(b"")  # an empty file is not readable
        >>> [c.epochs for c in store.files()], store.inventory().unreadable_newer
        ([2], 1)
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        settings = layout.settings
        exts = [settings.ckpts_extension]
        if settings.lightning_ckpts_extension != settings.ckpts_extension:
            exts.append(settings.lightning_ckpts_extension)
        #: The scenario's checkpoint extensions: the plain loop's, then Lightning's.
        self.extensions: tuple[str, ...] = tuple(exts)
        # files this process wrote since it last resumed: the current timeline, never moved aside
        self._written: set[str] = set()

    @property
    def folder(self) -> Path:
        """The checkpoint folder."""
        return self.layout.ckpts_dir

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.folder)!r})"

    # ------------------------------------------------------------------ listing

    def files(self, ext: str | None = None, select: Select | None = None) -> list[CkptFile]:
        """The stamped checkpoints with extension ``ext`` (all extensions when ``None``), oldest first.

        ``select`` keeps only files whose label it accepts (see :meth:`Layout.scan`).
        """
        if ext is not None:
            return self.layout.scan(ext, select)
        return self.layout.scan_all(self.extensions, select)

    def newest_first(self, ext: str, select: Select | None = None) -> Iterator[CkptFile]:
        """The stamped checkpoints with extension ``ext``, newest first, built lazily."""
        return self.layout.newest_first(ext, select)

    @staticmethod
    def resumable(label: str | None) -> bool:
        """Whether files with ``label`` can resume training (all but weights-only files)."""
        return not is_weights_only(label)

    # ------------------------------------------------------------------ the resume rule

    @staticmethod
    def first_readable(candidates: Iterable[CkptFile], verify: bool = False) -> CkptFile | None:
        """The first of ``candidates`` (newest first) that passes the integrity check.

        Each file that fails is skipped with a warning naming it (once per file version).
        """
        for ckpt in candidates:
            problem = _atomic.check_file(ckpt.path, verify=verify)
            if problem is None:
                return ckpt
            _atomic.warn_skipped(ckpt.path, problem)
        return None

    def resume_target(self, ext: str, *, verify: bool = False) -> CkptFile | None:
        """The checkpoint a run resumes from: the most advanced readable one, or ``None``.

        Most epochs, then most steps, over every file of every callback of the scenario
        (whatever ``monitor`` or ``save_top_k`` pruned); of files with the same stamp, the one
        written last; weights-only files never count.

        Args:
            ext: which loop's files (``settings.ckpts_extension`` or the Lightning one).
            verify: CRC-check every byte of a candidate, not only its structure.
        """
        candidates = self.newest_first(ext, self.resumable)
        target = self.first_readable(candidates, verify=verify)
        if target is None:
            return None
        # several callbacks saved this very state: the file written last also holds the others'
        # callback states as they were after their save (Lightning dumps every callback's state)
        for twin in candidates:
            if twin.order != target.order:
                break
            if (
                mtime_ns(twin.path) > mtime_ns(target.path)
                and _atomic.check_file(twin.path, verify=verify) is None
            ):
                target = twin
        return target

    def load_newest(
        self,
        files: list[CkptFile],
        *,
        verify: bool = False,
        loader_kwds: Mapping[str, Any] | None = None,
        accept: Callable[[CkptFile, dict[str, Any]], None] | None = None,
    ) -> tuple[CkptFile, dict[str, Any]] | None:
        """Load the most advanced readable file of ``files``, falling back past damaged ones.

        Args:
            files: candidates, oldest first.
            verify: CRC-check every byte before trusting a file.
            loader_kwds: extra ``torch.load`` arguments (``weights_only=True`` by default).
            accept: called with each loaded file and its data; raising
                :class:`~sucrose_lightning.errors.DamagedCheckpointError` there skips the file.

        Returns:
            ``(file, data)``, or ``None`` when ``files`` is empty.

        Raises:
            DamagedCheckpointError: no file of ``files`` can be read.
            CheckpointError: a file is intact but cannot be loaded (the message names it).
        """
        remaining = list(files)
        while remaining:
            ckpt = self.first_readable(reversed(remaining), verify=verify)
            if ckpt is None:
                break
            try:
                data = _atomic.torch_load(ckpt.path, loader_kwds)
                if not isinstance(data, dict):
                    raise DamagedCheckpointError(
                        f"checkpoint {ckpt.path} holds a {type(data).__name__}, not a dict"
                    )
                if accept is not None:
                    accept(ckpt, data)
                return ckpt, data
            except DamagedCheckpointError as err:
                _atomic.warn_skipped(ckpt.path, str(err))
                remaining = [c for c in remaining if c.order < ckpt.order]
        if len(files) == 1:
            raise DamagedCheckpointError(
                f"the checkpoint {files[0].path} of scenario {self.layout.name!r} cannot be read; "
                "load another one (ssc.ckpts() lists them) or move it away"
            )
        if files:
            raise DamagedCheckpointError(
                f"none of the {len(files)} checkpoint(s) of scenario {self.layout.name!r} in "
                f"{self.folder} can be read; move them away to start fresh"
            )
        return None

    # ------------------------------------------------------------------ writing

    def writer(self, *, cleanup: bool = True, run: str | None = None) -> ScenarioLock:
        """Open a writer's session: take the one-writer lock, then remove leftover temporary files.

        Args:
            cleanup: remove temporary files of interrupted saves (``sucrose prune`` leaves them
                to the next run and to ``sucrose check``).
            run: record a run of this kind (``"plain"``, ``"lightning"``) in the run history;
                its handle is the returned lock's ``run`` attribute.

        Each call returns its own holder; :meth:`ScenarioLock.release` ends that session (the
        lock itself is released when the process's last holder lets go, or when it dies). The
        first holder in a process records earlier runs that never ended as ``killed``.

        Raises:
            LockError: another live process is training this scenario (pid, host, start named).
        """
        lock = ScenarioLock(self.layout)
        lock.acquire()
        try:
            history = self.history()
            if lock.fresh:
                history.reap()
            if cleanup:
                self.cleanup_temps()
            handle = None
            if run is not None:
                ext = self.extensions[-1] if run == "lightning" else self.extensions[0]
                newest = self.resume_target(ext)
                handle = RunHandle(history, history.start(run, start_epochs=newest.epochs if newest else 0))
            lock.run = handle
        except BaseException:
            lock.release()
            raise
        return lock

    def history(self) -> RunHistory:
        """The scenario's run history (``.sucrose.runs.jsonl`` in its folder)."""
        return RunHistory(self.folder, self.layout.name)

    def status(self) -> list[RunStatus]:
        """Every recorded run of the scenario, oldest first (see :mod:`sucrose_lightning.status`)."""
        return self.history().runs()

    def cleanup_temps(self) -> None:
        """Remove temporary files of interrupted saves (only while holding the lock)."""
        for tmp in self.layout.temp_files():
            if pid_of_temp(tmp) == os.getpid():
                continue  # this process's own save may be in flight
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed leftover temporary file %s of an interrupted save", tmp)

    def save(self, obj: Any, final: Path) -> None:
        """Write ``obj`` to ``final`` atomically (streamed, fsynced, renamed; never partial)."""
        _atomic.atomic_save(obj, final)
        self._written.add(str(final))

    def new_timeline(self) -> None:
        """Forget which files this process wrote: the run resumed (or started) from the disk's state."""
        self._written.clear()

    def make_room(self, final: Path, reason: str) -> list[Path]:
        """Start a new timeline at ``final``: move every file at or past its stamp aside.

        A run that resumed from an older checkpoint than the newest would otherwise overwrite
        the newer files. They go into ``.abandoned/`` (never overwritten there either), and
        a warning names each one. Files this process wrote since it resumed are the current
        timeline and stay (two callbacks saving one epoch under two labels), and a name that
        is not one of the scenario's stamps moves nothing.
        """
        ext = final.suffix
        parsed = self.layout.parse(final.name, ext)
        if parsed is None:
            return []
        order = CkptFile(*parsed, str(final)).order
        newer = []
        for ckpt in self.newest_first(ext):
            if ckpt.order < order:
                break
            if ckpt.path not in self._written:
                newer.append(ckpt)
        return self._move_aside(newer, reason) if newer else []

    def _move_aside(self, files: list[CkptFile], reason: str) -> list[Path]:
        target_dir = self.layout.abandoned_dir
        _atomic.ensure_dir(target_dir)
        moved: list[Path] = []
        for ckpt in sorted(files, key=lambda c: c.order):
            src = Path(ckpt.path)
            dst = target_dir / src.name
            n = 1
            while dst.exists():
                dst = target_dir / f"{src.stem}.{n}{src.suffix}"
                n += 1
            try:
                os.replace(src, dst)
            except OSError as err:
                raise CheckpointError(
                    f"could not move {src} aside to {dst}: {_atomic.describe(err)}"
                ) from None
            moved.append(dst)
        warn_user(
            f"{reason}: moved {len(moved)} newer checkpoint(s) of scenario {self.layout.name!r} aside "
            f"into {target_dir} instead of overwriting them: " + ", ".join(p.name for p in moved),
            SucroseWarning,
        )
        _atomic.fsync_dir(self.folder)
        return moved

    # ------------------------------------------------------------------ retention

    def retention(self, keep: int, ext: str | None = None, select: Select | None = None) -> Retention:
        """Keep the newest ``keep`` readable checkpoints of each extension (or of ``ext``).

        ``select`` limits the rule to the files whose label it accepts (one callback's files).
        Unreadable files are never deleted: ``sucrose check`` reports them.
        """
        plan = Retention([], [], [])
        for e in self.extensions if ext is None else (ext,):
            readable = []
            for ckpt in self.layout.scan(e, select):
                if _atomic.check_file(ckpt.path) is None:
                    readable.append(ckpt)
                else:
                    plan.unreadable.append(ckpt)
            cut = max(len(readable) - keep, 0)
            plan.delete.extend(readable[:cut])
            plan.keep.extend(readable[cut:])
        return plan

    @staticmethod
    def delete(files: Iterable[CkptFile]) -> tuple[list[str], list[str]]:
        """Delete ``files``; returns ``(deleted paths, "path: reason" of failures)``.

        Call it inside a writer's session. A file already gone counts as deleted.
        """
        deleted: list[str] = []
        failed: list[str] = []
        for ckpt in files:
            try:
                os.remove(ckpt.path)
            except FileNotFoundError:
                pass
            except OSError as err:
                failed.append(f"{ckpt.path}: {err.strerror or err}")
                continue
            deleted.append(ckpt.path)
        return deleted, failed

    # ------------------------------------------------------------------ inventory

    def inventory(self, sizes: bool = False, names: Iterable[str] | None = None) -> ScenarioFiles:
        """What the scenario has on disk; reads one zip directory per scenario, imports nothing heavy.

        One listing of the folder, one ``stat`` (of the most advanced file, for its time) and
        one cheap check of the newest file; ``sizes=True`` adds a ``stat`` of every file for
        :attr:`ScenarioFiles.total_size`, the only per-file cost beyond the listing. ``names``:
        the folder's regular files when the caller listed it already (see :meth:`Layout.scan_all`).
        """
        from .tbreader import has_events

        info = ScenarioFiles(self.layout.name)
        if sizes:
            listed = self.layout.scan_stats(self.extensions, names=names)
            info.ckpts = [c for c, _ in listed]
            info.total_size = sum(st.st_size for _, st in listed)
        else:
            info.ckpts = self.layout.scan_all(self.extensions, names=names)
        i = len(info.ckpts) - 1
        while i >= 0:  # from the newest: usually one cheap zip-directory read per scenario
            path = info.ckpts[i].path
            if _atomic.check_file(path) is None:
                break
            if os.path.lexists(path):
                info.unreadable_newer += 1
            else:  # removed since the listing (pruned, moved aside): gone, not damaged
                del info.ckpts[i]
            i -= 1
        if info.ckpts:
            info.newest_time = _mtime(info.ckpts[-1].path)
        info.logs = has_events(self.layout.logs_dir)
        return info

    def problems(self, verify: bool = False) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], int]:
        """What ``sucrose check`` reports for this folder.

        Returns:
            ``(problems, notes, checked)``: problems as ``(kind, path, message)``, notes about
            saves in progress as ``(path, message)``, and how many checkpoints were checked.
        """
        problems: list[tuple[str, str, str]] = []
        notes: list[tuple[str, str]] = []
        checked = 0
        for ckpt in self.files():
            checked += 1
            reason = _atomic.check_file(ckpt.path, verify=verify)
            if reason is not None:
                problems.append(("ckpt", ckpt.path, f"unreadable checkpoint: {reason}"))
        for tmp in sorted(self.layout.temp_files()):
            if pid_alive(pid_of_temp(tmp)):
                notes.append((str(tmp), "a save in progress (its process is running)"))
            else:
                problems.append(
                    (
                        "temp",
                        str(tmp),
                        "leftover temporary file of an interrupted save; the next run of "
                        f"{self.layout.name!r} removes it, or delete it",
                    )
                )
        return problems, notes, checked


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
