"""Crash-safe checkpoint files: atomic streaming writes, integrity checks and safe loads.

torch is imported only inside the functions that need it, so importing this module stays
cheap for config-only use (``sucrose check`` reads archives with :mod:`zipfile` alone).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from .errors import CheckpointError, DamagedCheckpointError, SucroseWarning, UnsafeCheckpointError
from .layout import temp_path

__all__ = [
    "append_line",
    "atomic_save",
    "atomic_write_bytes",
    "check_file",
    "describe",
    "ensure_dir",
    "fsync_dir",
    "open_exclusive",
    "refuse_symlink",
    "torch_load",
    "warn_skipped",
]

log = logging.getLogger("sucrose_lightning")


# --------------------------------------------------------------------------- writing


def _serialize(obj: Any, stream: IO[bytes]) -> None:
    """Stream ``obj`` into an open file with ``torch.save`` (no in-memory copy of the bytes)."""
    import torch

    torch.save(obj, stream)


def fsync_dir(folder: Path) -> None:
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


def describe(err: OSError) -> str:
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


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def refuse_symlink(path: str | os.PathLike[str], what: str = "file") -> None:
    """Raise :class:`CheckpointError` naming ``path``, a symlink sucrose will not follow.

    Examples:
        >>> try:
        ...     refuse_symlink("/ws/ckpts/base/.sucrose.lock", "lock file")
        ... except CheckpointError as err:
        ...     print(str(err).split(";")[0])
        lock file /ws/ckpts/base/.sucrose.lock is a symbolic link
    """
    try:
        target = f" (pointing to {os.readlink(path)})"
    except OSError:
        target = ""
    raise CheckpointError(
        f"{what} {path} is a symbolic link{target}; sucrose never writes through a symlink in a "
        "workspace (someone may have planted it): remove it and start again"
    )


def _check_not_link(path: Path, what: str) -> None:
    if os.path.islink(path):
        refuse_symlink(path, what)


def open_exclusive(path: Path, what: str = "temporary file", mode: int = 0o644) -> IO[bytes]:
    """Create ``path`` exclusively without following symlinks (``O_CREAT | O_EXCL | O_NOFOLLOW``).

    ``mode`` is the new file's mode before the umask.

    Returns:
        The file, open for binary writing (its ``name`` is ``path``).

    Raises:
        CheckpointError: something (a symlink, a file) already sits under that name.
    """

    def opener(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)

    try:
        return open(path, "wb", opener=opener)
    except FileExistsError:
        _check_not_link(path, what)
        raise CheckpointError(f"{what} {path} exists already; remove it and start again") from None


def append_line(path: Path, line: bytes, what: str = "file") -> None:
    """Append one line to ``path`` (created when missing) with one ``write``, then fsync.

    The file is opened with ``O_APPEND | O_NOFOLLOW``: a symlink planted under its name is
    refused, naming it. After a torn last line (a crash mid-write) the new line starts on its own.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            refuse_symlink(path, what)
        raise CheckpointError(f"cannot write {what} {path}: {describe(err)}") from None
    try:
        if not os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)) or not _is_reg(fd):
            raise CheckpointError(f"{what} {path} is not a regular file; remove it")
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crash mid-write left half a line
        os.write(fd, (b"\n" if torn else b"") + (line if line.endswith(b"\n") else line + b"\n"))
        os.fsync(fd)
    except OSError as err:
        raise CheckpointError(f"cannot write {what} {path}: {describe(err)}") from None
    finally:
        os.close(fd)


def _is_reg(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def atomic_write_bytes(final: Path, data: bytes, what: str = "file", mode: int = 0o644) -> None:
    """Replace ``final`` by ``data`` atomically (exclusive temp file, fsync, rename); never via a symlink.

    ``mode``: the file's mode before the umask (``0o666`` for a file others append to, as they
    would to one they had created).
    """
    _check_not_link(final, what)
    tmp = temp_path(final)
    stream = open_exclusive(tmp, mode=mode)
    try:
        with stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) or raise :class:`CheckpointError` naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot create checkpoint folder {folder}: {describe(err)}") from None


def atomic_save(obj: Any, final: Path) -> None:
    """Write ``obj`` to ``final`` so that ``final`` is never partial.

    The bytes are streamed into a hidden temporary file in the same folder, flushed and
    fsynced, renamed over ``final`` and the folder is fsynced. On any failure the
    temporary file is removed, whatever ``final`` held before is untouched, and a
    :class:`CheckpointError` says what failed.

    Args:
        obj: what ``torch.save`` can write.
        final: the checkpoint path.

    Raises:
        CheckpointError: the folder cannot be created or written (disk full, permission
            denied, read-only filesystem, ...), or ``final`` is a symlink (refused, naming it).
    """
    ensure_dir(final.parent)
    _check_not_link(final, "checkpoint")
    tmp = temp_path(final)
    try:
        stream = open_exclusive(tmp)
    except OSError as err:
        raise CheckpointError(
            f"could not save checkpoint {final}: {describe(err)}; the previous checkpoints in "
            f"{final.parent} are untouched"
        ) from err
    try:
        with stream:
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
            f"could not save checkpoint {final}: {describe(cause)}; the previous checkpoints in "
            f"{final.parent} are untouched"
        ) from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


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
    warnings.warn(f"skipping unreadable checkpoint {path}: {problem}", SucroseWarning, stacklevel=4)


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
