"""Lightning's checkpoint IO, made crash-safe: every ``trainer.save_checkpoint`` streams atomically.

:class:`SucroseCheckpointIO` replaces the strategy's default ``TorchCheckpointIO`` (which
serializes the whole checkpoint into memory first and renames without fsync) when a
:class:`~sucrose_lightning.lightning.SucroseCheckpoint` is set up. Saves still go through
``trainer.save_checkpoint`` and the strategy, so user plugins, Trainer subclasses and spies see
every one; a user's own ``trainer.save_checkpoint(path)`` is crash-safe too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from .store import CheckpointStore

__all__ = ["SucroseCheckpointIO"]


class SucroseCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go through the scenario's :class:`CheckpointStore`.

    A save into the scenario's folder first makes room for a new timeline (newer files of an
    abandoned timeline go to ``.abandoned/``), then streams the file into a temporary name,
    fsyncs and renames it. Loading is Lightning's own.

    Args:
        store: the scenario's checkpoint store.

    Examples:
        >>> io = SucroseCheckpointIO(sucrose.SucroseScenario(ws, "base").store)
        >>> io.save_checkpoint({"x": 1}, io.store.layout.ckpt_path(1, None, ".ckpt"))
        >>> [c.epochs for c in io.store.files(".ckpt")]
        [1]
    """

    def __init__(self, store: CheckpointStore) -> None:
        super().__init__()
        self.store = store
        self._defer = False
        self.deferred: BaseException | None = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (streamed, fsynced, renamed).

        Raises:
            TypeError: ``storage_options`` is given (like ``TorchCheckpointIO``).
            CheckpointError: the write failed (disk full, permission denied...); earlier files are intact.
        """
        if storage_options is not None:
            raise TypeError(
                "`Trainer.save_checkpoint(..., storage_options=...)` with `storage_options` arg"
                f" is not supported for `{type(self).__name__}`. Please implement your custom `CheckpointIO`"
                " to define how you'd like to use `storage_options`."
            )
        final = Path(path).absolute()
        try:
            self.store.make_room(final, f"saving {final.name} of a run resumed from an older checkpoint")
            self.store.save(checkpoint, final)
        except Exception as err:
            if not self._defer:
                raise
            self.deferred = err

    @contextlib.contextmanager
    def deferring_errors(self) -> Iterator[None]:
        """Keep a failed write in :attr:`deferred` instead of raising it (the callback reports it on
        every rank after Lightning's barrier, so no rank waits forever)."""
        self._defer, self.deferred = True, None
        try:
            yield
        finally:
            self._defer = False
