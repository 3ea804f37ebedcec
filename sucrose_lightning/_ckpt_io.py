"""Lightning's checkpoint IO, made crash-safe: every ``trainer.save_checkpoint`` streams atomically.

:class:`SucroseCheckpointIO` replaces the strategy's default ``TorchCheckpointIO`` (which
serializes the whole checkpoint into memory first and renames without fsync) when a
:class:`~sucrose_lightning.lightning.SucroseCheckpoint` is set up. Saves still go through
``trainer.save_checkpoint`` and the strategy, so user plugins, Trainer subclasses and spies see
every one; a user's own ``trainer.save_checkpoint(path)`` is crash-safe too. With
``async_save=True`` the write happens in the background (:mod:`sucrose_lightning._async`), and
loading memory-maps local files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ._async import AsyncSaver, mmap_kwds
from ._warn import warn_user
from .errors import CheckpointError, SucroseWarning
from .store import CheckpointStore

__all__ = ["SucroseCheckpointIO", "finish_writes", "install_io", "io_of"]

_REASON = "saving {} of a run resumed from an older checkpoint"


def _keep_storage(storage: Any, location: Any) -> Any:
    return storage


class SucroseCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go through the scenario's :class:`CheckpointStore`.

    A save into the scenario's folder first makes room for a new timeline (newer files of an
    abandoned timeline go to ``.abandoned/``), then streams the file into a temporary name,
    fsyncs and renames it. With ``async_save=True`` the caller only waits for the previous
    background write and for a snapshot of the checkpoint's tensors; the write itself runs in a
    background thread, and its failure is raised by the next save or by :meth:`wait`. Loading
    memory-maps the file where torch supports it and the file is local.

    Args:
        store: the scenario's checkpoint store.
        async_save: write in a background thread (at most one write in flight).

    Examples:
        >>> io = SucroseCheckpointIO(sucrose.SucroseScenario(ws, "base").store, async_save=True)
        >>> io.save_checkpoint({"x": torch.ones(1)}, io.store.layout.ckpt_path(1, None, ".ckpt"))
        >>> io.wait()
        >>> [c.epochs for c in io.store.files(".ckpt")]
        [1]
    """

    def __init__(self, store: CheckpointStore, *, async_save: bool = False) -> None:
        super().__init__()
        self.store = store
        #: The background writer when ``async_save=True``, else ``None``.
        self.saver = AsyncSaver(store) if async_save else None
        self._defer = False
        self.deferred: BaseException | None = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (streamed, fsynced, renamed).

        Raises:
            TypeError: ``storage_options`` is given (like ``TorchCheckpointIO``).
            CheckpointError: the write failed (disk full, permission denied...), or with
                ``async_save`` the previous background write failed; earlier files are intact.
        """
        if storage_options is not None:
            raise TypeError(
                "`Trainer.save_checkpoint(..., storage_options=...)` with `storage_options` arg"
                f" is not supported for `{type(self).__name__}`. Please implement your custom `CheckpointIO`"
                " to define how you'd like to use `storage_options`."
            )
        final = Path(path).absolute()
        try:
            if self.saver is not None:
                self.saver.save(checkpoint, final, _REASON.format(final.name))
            else:
                self.store.make_room(final, _REASON.format(final.name))
                self.store.save(checkpoint, final)
        except Exception as err:
            if not self._defer:
                raise
            self.deferred = err

    def wait(self, *, quietly: bool = False) -> None:
        """Block until the background write in flight (if any) is complete on disk.

        Args:
            quietly: warn about a failed write instead of raising it (while another exception
                is on its way).

        Raises:
            CheckpointError: that write failed (the message names the file).
        """
        if self.saver is None:
            return
        try:
            self.saver.wait()
        except CheckpointError as err:
            if not quietly:
                raise
            warn_user(str(err), SucroseWarning)

    def after_write(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the write in flight is complete (at once when saving synchronously)."""
        if self.saver is None:
            fn()
        else:
            self.saver.after_write(fn)

    def remove_checkpoint(self, path: Any) -> None:
        """Delete ``path`` once the write in flight is complete (a kill never leaves fewer files)."""
        self.after_write(lambda: TorchCheckpointIO.remove_checkpoint(self, path))

    def teardown(self) -> None:
        """Wait for the last background write (the end of ``fit``) and free the snapshot buffers.

        The callback has already waited at the end of training (every rank) and after an
        exception (warning about a failure there), so what this finds is a write started later.

        Raises:
            CheckpointError: that write failed (the message names the file).
        """
        if self.saver is not None:
            self.saver.close()

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable[..., Any] | None = _keep_storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Lightning's load, memory-mapping a local file (nothing is read before it is used).

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        local = Path(path) if isinstance(path, (str, Path)) and "://" not in str(path) else None
        kwds = mmap_kwds(local.parent) if local is not None else {}
        if not kwds:  # Lightning < 2.6 has no weights_only here
            extra = {} if weights_only is None else {"weights_only": weights_only}
            return super().load_checkpoint(path, map_location=map_location, **extra)
        import torch

        if not local.exists():  # type: ignore[union-attr]
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        data: dict[str, Any] = torch.load(
            str(local), map_location=map_location, weights_only=weights_only, **kwds
        )
        return data

    @contextlib.contextmanager
    def deferring_errors(self) -> Iterator[None]:
        """Keep a failed write in :attr:`deferred` instead of raising it (the callback reports it on
        every rank after Lightning's barrier, so no rank waits forever)."""
        self._defer, self.deferred = True, None
        try:
            yield
        finally:
            self._defer = False


def install_io(trainer: pl.Trainer, store: CheckpointStore, async_save: bool) -> None:
    """Replace the strategy's default ``TorchCheckpointIO`` by ours (asynchronous if asked)."""
    io = trainer.strategy.checkpoint_io
    if type(io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = SucroseCheckpointIO(store, async_save=async_save)
    elif async_save and isinstance(io, SucroseCheckpointIO):
        if io.saver is None:
            io.saver = AsyncSaver(io.store)
    elif async_save:
        warn_user(
            f"async_save=True has no effect: the strategy's checkpoint IO is {type(io).__name__}, "
            "not Lightning's default TorchCheckpointIO (drop the plugin or async_save)",
            SucroseWarning,
        )


class _SyncIO:
    """Another checkpoint IO seen as ours: nothing is ever in flight."""

    @staticmethod
    def wait(*, quietly: bool = False) -> None:
        """Nothing to wait for."""

    @staticmethod
    def after_write(fn: Callable[[], None]) -> None:
        """Run ``fn`` now."""
        fn()


def io_of(trainer: pl.Trainer) -> SucroseCheckpointIO | _SyncIO:
    """The trainer's :class:`SucroseCheckpointIO`, or a stand-in that never waits."""
    io = trainer.strategy.checkpoint_io
    return io if isinstance(io, SucroseCheckpointIO) else _SyncIO()


def finish_writes(trainer: pl.Trainer) -> None:
    """Wait for the background write in flight on rank 0; every rank raises its failure.

    A collective (a broadcast from rank 0): every rank calls it at the same points.

    Raises:
        CheckpointError: the write failed (the message names the file).
    """
    io = trainer.strategy.checkpoint_io
    if not isinstance(io, SucroseCheckpointIO) or io.saver is None:
        return
    failure: CheckpointError | None = None
    try:
        io.wait()
    except CheckpointError as err:
        failure = err
    message = trainer.strategy.broadcast(None if failure is None else str(failure))
    if failure is not None:
        raise failure
    if message is not None:
        raise CheckpointError(f"on rank 0: {message}")
