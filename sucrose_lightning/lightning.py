"""The Lightning side: a checkpoint callback and a TensorBoard logger for one scenario.

Used as::

    trainer = Trainer(callbacks=ssc.callbacks(), logger=ssc.logger())
    model = ssc.partial(MyLitModule, "model")()
    trainer.fit(model, datamodule, ckpt_path=ssc.last_ckpt())

Checkpoint names carry the same epoch stamp as the plain loop, with Lightning's
extension (``workspace.lightning_ckpts_extension``, ``.ckpt`` by default)::

    base_case1_e3.ckpt        end of an epoch: 3 epochs finished
    base_case1_e3_s1500.ckpt  any other save (every_n_train_steps, time interval, mid-epoch
                              validation): 3 epochs finished, global step 1500
    last.ckpt                 the ``save_last=True`` copy (Lightning's name, so
                              ``ckpt_path="last"`` finds it; ``last_ckpt()`` ignores it)

A step-triggered save that falls on an epoch's last batch runs before Lightning counts
that epoch, so it is named ``_e<k>_s<step>`` with ``k`` the epochs finished *before* it
(e.g. ``_e0_s4`` for the last of 4 batches of the first epoch). It still sorts after every
earlier file and before ``_e<k+1>``, and resuming from it starts the next epoch.

This module imports lightning; ``import sucrose_lightning`` does not import it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from . import _rng
from ._lock import ScenarioLock
from ._protocol import ScenarioLike
from ._record import META_KEY, config_diff, drift, read_record
from .errors import CheckpointError, LockError, SucroseConfigWarning, SucroseError, SucroseWarning
from .loggers import SucroseLogger, make_logger

__all__ = [
    "ScenarioLike",
    "SucroseCheckpoint",
    "SucroseLogger",
    "config_diff",
    "make_callbacks",
    "make_logger",
]


_FIXED_CKPT_OPTIONS = ("dirpath", "filename", "enable_version_counter")


class SucroseCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing the scenario's epoch-stamped, crash-safe files.

    Everything ``ModelCheckpoint`` does keeps its meaning (``monitor``, ``mode``,
    ``save_top_k``, ``every_n_epochs``, ``every_n_train_steps``, ``train_time_interval``,
    ``save_last``, ``save_weights_only``, ``best_model_path``, ``ckpt_path="best"``); what
    changes:

    * files go to ``ssc.ckpts_dir`` with the scenario's stamps (see the module docs);
    * without ``monitor`` every checkpoint is kept (``save_top_k=-1``) unless ``keep_last``
      says otherwise; with ``monitor`` Lightning's default ``save_top_k=1`` applies;
    * each file is written by streaming ``torch.save`` into a temporary file in the same
      folder, fsynced and renamed (never Lightning's in-memory buffer); a failed write raises
      :class:`~sucrose_lightning.errors.CheckpointError` naming the path;
    * a stamp that exists already (a run resumed from an older checkpoint than the newest)
      is never overwritten and never gets a ``-v1`` suffix: the newer files are moved into
      ``<ckpts_dir>/.abandoned/`` with a warning;
    * every checkpoint records the scenario (``checkpoint["sucrose"]``: name, merged config,
      config hash, epochs, step, random states); resuming restores the random states (exact
      resume) and warns about config keys that changed since (``strict_config=True``: error);
    * the writing rank (rank 0) holds the scenario's lock while fitting: a second process
      training the same scenario gets :class:`~sucrose_lightning.errors.LockError`;
    * at the end of ``fit`` it warns once about config keys the run never read.

    Args:
        ssc: the scenario.
        keep_last: keep only the newest ``keep_last`` stamped files (not with ``monitor``).
        strict_config: raise instead of warning when the resumed checkpoint's config differs.
        warn_unused: warn at the end of ``fit`` about config keys never read.
        **options: passed to ``ModelCheckpoint`` (``dirpath``, ``filename`` and
            ``enable_version_counter`` are fixed by the scenario).

    Raises:
        SucroseError: a fixed option is given, or ``keep_last`` is combined with ``monitor``
            or ``save_top_k``.

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> callback = SucroseCheckpoint(ssc, keep_last=3)
        >>> callback.dirpath == str(ssc.ckpts_dir), callback.save_top_k
        (True, -1)
        >>> best = SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=2)
        >>> best.monitor, best.save_top_k
        ('val_loss', 2)
    """

    def __init__(
        self,
        ssc: ScenarioLike,
        *,
        keep_last: int | None = None,
        strict_config: bool = False,
        warn_unused: bool = True,
        **options: Any,
    ) -> None:
        fixed = [k for k in _FIXED_CKPT_OPTIONS if k in options]
        if fixed:
            raise SucroseError(
                f"the checkpoint callback of scenario {ssc.name!r} names its files itself; drop "
                + ", ".join(f"{k}=" for k in fixed)
            )
        if keep_last is not None:
            if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
                raise SucroseError(f"keep_last must be a positive int, not {keep_last!r}")
            if options.get("monitor") is not None or "save_top_k" in options:
                raise SucroseError(
                    "keep_last=K keeps the newest K checkpoints; it cannot be combined with monitor= "
                    "or save_top_k= (use save_top_k with monitor for the best K)"
                )
        if options.get("monitor") is None:
            options.setdefault("save_top_k", -1)
        super().__init__(dirpath=str(ssc.ckpts_dir), enable_version_counter=False, **options)
        self.ssc = ssc
        self.keep_last = keep_last
        self.strict_config = strict_config
        self.warn_unused = warn_unused
        self.FILE_EXTENSION = ssc.config_file.settings.lightning_ckpts_extension
        # "epoch" inside the end-of-epoch hooks; any other save (step- or time-triggered from
        # ModelCheckpoint.on_train_batch_end, on exception) is named as a mid-epoch one
        self._phase: str | None = None
        self._trainer: pl.Trainer | None = None
        self._lock: ScenarioLock | None = None
        self._unused_warned = False

    # ------------------------------------------------------------------ names

    @contextlib.contextmanager
    def _saving_as(self, phase: str | None) -> Iterator[None]:
        previous, self._phase = self._phase, phase
        try:
            yield
        finally:
            self._phase = previous

    def _stamp(self) -> tuple[int, int | None]:
        """``(epochs finished, global step or None)`` for a save happening now."""
        trainer = self._trainer
        if trainer is None:
            return 0, None
        if self._phase == "epoch":
            return trainer.current_epoch + 1, None
        return trainer.current_epoch, trainer.global_step

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        """The stamped path of the checkpoint saved now (``last.ckpt`` for ``save_last``).

        At the end of the third epoch that is ``base_case1_e3.ckpt``, for a save at global step
        1500 during the fourth ``base_case1_e3_s1500.ckpt``.
        """
        if filename == self.CHECKPOINT_NAME_LAST:
            name = f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        else:
            epochs, step = self._stamp()
            name = self.ssc.layout.ckpt_name(epochs, step, self.FILE_EXTENSION)
        return os.path.join(str(self.dirpath or self.ssc.ckpts_dir), name)

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Resolve the folder and, on the writing rank, take the scenario's lock (for ``fit``)."""
        self._trainer = trainer
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        problem: str | None = None
        if trainer.is_global_zero and self._lock is None:
            try:
                self._lock = self.ssc.store.writer()
            except SucroseError as err:
                problem = str(err)
        problem = trainer.strategy.broadcast(problem, src=0)
        if problem is not None:
            raise LockError(problem)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Release the scenario's lock taken in :meth:`setup`."""
        if stage == "fit":
            self._release()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Lightning's ``save_on_exception``, then release the lock (``teardown`` is not called then)."""
        try:
            super().on_exception(trainer, pl_module, exception)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _ModelCheckpoint__warn_if_dir_not_empty(self, dirpath: Any) -> None:
        """Silence Lightning's "directory not empty" warning: resuming is the normal case here."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """End-of-epoch saves (named with the epochs finished)."""
        with self._saving_as("epoch"):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Saves after validation: end-of-epoch ones after the epoch's last batch, else mid-epoch."""
        last_batch = bool(getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False))
        phase = "epoch" if last_batch and not self._defer_save_until_validation else "step"
        with self._saving_as(phase):
            super().on_validation_end(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record the scenario (name, merged config, config hash, random states) in the checkpoint."""
        epochs, step = self._stamp()
        meta = self.ssc.meta(epochs, trainer.global_step)
        meta["mid_epoch"] = step is not None
        checkpoint[META_KEY] = meta

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore the random states and compare the recorded config with the current one.

        Raises:
            SucroseError: with ``strict_config=True``, when the config changed.
        """
        meta = read_record(checkpoint, str(trainer.ckpt_path))
        if meta is None:
            warnings.warn(
                f"the checkpoint resumed by scenario {self.ssc.name!r} was not written by sucrose: its "
                "config and random states are unknown (the resumed run may not repeat exactly)",
                SucroseWarning,
                stacklevel=2,
            )
            return
        text = drift(meta, self.ssc.name, self.ssc.hparams(), self.ssc.config_file.path)
        if text is not None:
            if self.strict_config:
                raise SucroseError(text + "\n(strict_config=True: refusing to resume)")
            warnings.warn(text, SucroseConfigWarning, stacklevel=2)
        from lightning.pytorch.trainer.states import TrainerFn

        rng = meta.get("rng")
        if isinstance(rng, dict) and trainer.state.fn == TrainerFn.FITTING:
            try:
                _rng.restore_rng(rng)
            except Exception as err:
                raise CheckpointError(
                    f"the checkpoint {trainer.ckpt_path} resumed by scenario {self.ssc.name!r} has a "
                    f"damaged random state ({type(err).__name__}: {err}); resume from an older one "
                    "(ssc.ckpts()) or check it with 'sucrose check --verify'"
                ) from err

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Warn once about config keys this run never read (a typo in config.yaml is otherwise silent)."""
        if not self.warn_unused or self._unused_warned or not trainer.is_global_zero:
            return
        self._unused_warned = True
        unused = self.ssc.unused_keys()
        if unused:
            warnings.warn(
                f"scenario {self.ssc.name!r}: {len(unused)} config key(s) were never read during fit: "
                + ", ".join(unused)
                + f" (set in {self.ssc.config_file.path}; a typo?)",
                SucroseConfigWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ writing

    def _streams(self, trainer: pl.Trainer) -> bool:
        """Whether this strategy's save is the plain one (rank 0 torch.save) that we replace."""
        from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
        from lightning.pytorch.strategies import Strategy

        strategy = trainer.strategy
        return (
            type(strategy).save_checkpoint is Strategy.save_checkpoint
            and type(strategy.checkpoint_io) is TorchCheckpointIO
        )

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Write the checkpoint (streamed, atomic) and keep Lightning's bookkeeping."""
        if self._streams(trainer):
            self._write(trainer, filepath)
        else:  # sharded or custom checkpoint IO: let the strategy write, but never silently fail
            try:
                trainer.save_checkpoint(filepath, self.save_weights_only)
            except OSError as err:
                raise CheckpointError(f"could not save checkpoint {filepath}: {err}") from err
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _write(self, trainer: pl.Trainer, filepath: str) -> None:
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        trainer.strategy.barrier("sucrose.save")  # every rank is done before rank 0 renames
        failure: BaseException | None = None
        message: str | None = None
        if trainer.is_global_zero:
            try:
                final = Path(filepath)
                store = self.ssc.store
                store.make_room(final, f"saving {final.name} of a run resumed from an older checkpoint")
                store.save(checkpoint, final)
                self._prune()
            except Exception as err:  # reported on every rank below
                failure, message = err, f"{type(err).__name__}: {err}"
        del checkpoint
        message = trainer.strategy.broadcast(message, src=0)
        if failure is not None:
            raise failure
        if message is not None:
            raise CheckpointError(f"rank 0 could not save checkpoint {filepath}: {message}")

    def _prune(self) -> None:
        """``keep_last``: the store's retention rule on this callback's extension."""
        if self.keep_last is None:
            return
        store = self.ssc.store
        store.delete(store.retention(self.keep_last, self.FILE_EXTENSION).delete)


def make_callbacks(ssc: ScenarioLike, **options: Any) -> list[Callback]:
    """The Lightning callbacks of a scenario: ``Trainer(callbacks=ssc.callbacks())``.

    Args:
        ssc: the scenario.
        **options: passed to :class:`SucroseCheckpoint` (``keep_last``, ``strict_config``,
            ``warn_unused``, and ``ModelCheckpoint``'s own options).

    Returns:
        ``[SucroseCheckpoint(ssc, **options)]``.

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> [type(c).__name__ for c in make_callbacks(ssc, every_n_train_steps=500, keep_last=5)]
        ['SucroseCheckpoint']
    """
    return [SucroseCheckpoint(ssc, **options)]
