"""The Lightning side: ``SucroseCheckpoint``, a ``ModelCheckpoint`` writing the scenario's files.

Used as::

    trainer = Trainer(callbacks=ssc.callbacks(), logger=ssc.logger())
    model = ssc.partial(MyLitModule, "model")()
    trainer.fit(model, datamodule, ckpt_path=ssc.last_ckpt())

Checkpoint names carry the same epoch stamp as the plain loop, with Lightning's extension
(``workspace.lightning_ckpts_extension``, ``.ckpt`` by default), and a label for every callback
but the scenario's main one::

    base_case1_e3.ckpt              end of an epoch: 3 epochs finished
    base_case1_e3_s1500.ckpt        any other save (every_n_train_steps, time interval, mid-epoch
                                    validation, a stop signal): 3 epochs finished, global step 1500
    base_case1_e3.best.ckpt         a monitored callback's top-k file (label ``best`` by default)
    base_case1_e4.best-latest.ckpt  that callback's latest state while it is not among the top k
    base_case1_e3.weights.ckpt      a ``save_weights_only=True`` file: never a resume point
    last.ckpt                       the ``save_last=True`` copy (Lightning's name)

A step-triggered save that falls on an epoch's last batch runs before Lightning counts
that epoch, so it is named ``_e<k>_s<step>`` with ``k`` the epochs finished *before* it
(e.g. ``_e0_s4`` for the last of 4 batches of the first epoch). It still sorts after every
earlier file and before ``_e<k+1>``, and resuming from it starts the next epoch.

This module imports lightning; ``import sucrose_lightning`` does not import it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from . import _lit_state
from ._ckpt_io import SucroseCheckpointIO, finish_writes, install_io, io_of
from ._ckpt_options import checkpoint_options, option_names
from ._lock import ScenarioLock
from ._protocol import ScenarioLike
from ._record import config_diff
from ._warn import warn_user
from .errors import CheckpointError, LockError, SucroseConfigWarning, SucroseError
from .layout import WEIGHTS_LABEL
from .loggers import SucroseLogger, make_logger
from .preemption import SucrosePreemption

__all__ = [
    "ScenarioLike",
    "SucroseCheckpoint",
    "SucroseCheckpointIO",
    "SucroseLogger",
    "config_diff",
    "make_callbacks",
    "make_logger",
]

_OPTION_NAMES = option_names(ModelCheckpoint)


class SucroseCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing the scenario's epoch-stamped, crash-safe files.

    Everything ``ModelCheckpoint`` does keeps its meaning (``monitor``, ``mode``,
    ``save_top_k``, ``every_n_epochs``, ``every_n_train_steps``, ``train_time_interval``,
    ``save_last``, ``save_weights_only``, ``save_on_exception``, ``best_model_path``,
    ``ckpt_path="best"``); what changes:

    * files go to ``ssc.ckpts_dir`` with the scenario's stamps and this callback's label (see
      the module docs); several callbacks on one scenario never share a name;
    * without ``monitor`` every checkpoint is kept (``save_top_k=-1``) unless ``keep_last``
      says otherwise; with ``monitor`` Lightning's top-k applies, and the callback also keeps
      its latest state (``<tag>-latest``) whenever it is not among the top k, so
      ``ssc.last_ckpt()`` never goes back in time;
    * saves go through ``trainer.save_checkpoint`` and the strategy's ``CheckpointIO``; where
      that is Lightning's default, it is replaced by :class:`SucroseCheckpointIO`, which
      streams into a temporary file, fsyncs and renames (a failed write raises
      :class:`~sucrose_lightning.errors.CheckpointError` naming the path, on every rank);
    * a stamp at or before the newest one of another timeline (a run resumed from an older
      checkpoint) never overwrites it: the newer files are moved into ``.abandoned/``;
    * every checkpoint records the scenario (``checkpoint["sucrose"]``: name, merged config,
      config hash, epochs, step, every rank's random states); resuming restores each rank's
      random states and warns about config keys that changed since (``strict_config``: error);
    * ``ckpt_path="last"`` resumes from ``ssc.last_ckpt()``; resuming a checkpoint written by a
      stock ``ModelCheckpoint`` with the same options keeps its best-k state;
    * rank 0 holds the scenario's lock while fitting (a second process gets ``LockError``);
    * at the end of ``fit`` it warns once about config keys the run never read.

    Args:
        ssc: the scenario.
        tag: label of this callback's files (``base_case1_e3.<tag>.ckpt``); ``None`` (the
            scenario's main timeline) by default, ``"best"`` with ``monitor``.
        keep_last: keep only this callback's newest ``keep_last`` files (not with ``monitor``).
        strict_config: raise instead of warning when the resumed checkpoint's config differs.
        warn_unused: warn at the end of ``fit`` about config keys never read.
        monitor: ``ModelCheckpoint``'s; so are ``verbose``, ``save_last``, ``save_on_exception``,
            ``save_weights_only``, ``mode``, ``auto_insert_metric_name``, ``every_n_train_steps``,
            ``train_time_interval``, ``every_n_epochs`` and ``save_on_train_epoch_end``, with
            Lightning's defaults. They are spelled out, so ``LightningCLI`` and ``--help`` see them.
        save_top_k: Lightning's top-k; ``None`` (not given) keeps every file without ``monitor``
            and Lightning's 1 with it.
        **fixed: refused: ``dirpath``, ``filename`` and ``enable_version_counter`` are fixed by
            the scenario.
        async_save: write in a background thread; training waits only for a snapshot of the tensors.

    Raises:
        SucroseError: a fixed option is given, a bad ``tag``, or ``keep_last`` combined with
            ``monitor`` or ``save_top_k``; at ``setup``, two callbacks of one scenario whose
            files would share a label.

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> callback = SucroseCheckpoint(ssc, keep_last=3)
        >>> callback.dirpath == str(ssc.ckpts_dir), callback.save_top_k, callback.label
        (True, -1, None)
        >>> best = SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=2)
        >>> best.monitor, best.save_top_k, best.label
        ('val_loss', 2, 'best')
    """

    #: Global step of the last save, if that save was only the latest state (not among the top k).
    _latest_step: int | None = None

    def __init__(
        self,
        ssc: ScenarioLike,
        *,
        tag: str | None = None,
        keep_last: int | None = None,
        strict_config: bool = False,
        warn_unused: bool = True,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | Literal["link"] | None = None,
        save_top_k: int | None = None,
        save_on_exception: bool = False,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        async_save: bool = False,
        **fixed: Any,
    ) -> None:
        # ModelCheckpoint's options are spelled out (jsonargparse, LightningCLI and --help read
        # the signature); ``save_top_k=None`` means "not given": -1 without monitor, else 1.
        given = {k: v for k, v in locals().items() if k in _OPTION_NAMES}
        options, tag = checkpoint_options(ssc.name, tag, keep_last, given, fixed)
        super().__init__(dirpath=str(ssc.ckpts_dir), enable_version_counter=False, **options)
        self.ssc = ssc
        self.tag = tag
        self.keep_last = keep_last
        self.strict_config = strict_config
        self.warn_unused = warn_unused
        self.async_save = async_save
        self.FILE_EXTENSION = ssc.config_file.settings.lightning_ckpts_extension
        #: Path of the monitored callback's latest state while it is not among the top k.
        self.latest_model_path = ""
        # "epoch" inside the end-of-epoch hooks; any other save (step- or time-triggered, on
        # exception, a user's trainer.save_checkpoint) is named as a mid-epoch one
        self._phase: str | None = None
        self._role = ""  # "" or "latest": which of the callback's names the save takes
        self._saving = False
        self._trainer: pl.Trainer | None = None
        self._lock: ScenarioLock | None = None
        self._unused_warned = False

    # ------------------------------------------------------------------ identity

    @property
    def label(self) -> str | None:
        """The label of this callback's (top-k) files: its tag, ``-weights`` for weights-only files."""
        return self._label("")

    def _label(self, role: str) -> str | None:
        parts = [p for p in (self.tag, role) if p]
        if self.save_weights_only:
            parts.append(WEIGHTS_LABEL)
        return "-".join(parts) or None

    @property
    def state_key(self) -> str:
        """Lightning's state key; a tagged callback adds its tag so several can coexist."""
        key = _lit_state.state_key_options(self)
        if self.tag is not None:
            key["tag"] = self.tag
        return self._generate_state_key(**key)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (``ddp_spawn``) without the trainer and the lock, which belong to one process."""
        state = self.__dict__.copy()
        state.update(_trainer=None, _lock=None)
        return state

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
        1500 during the fourth ``base_case1_e3_s1500.ckpt``; a tagged callback adds its label.
        """
        if filename == self.CHECKPOINT_NAME_LAST:
            name = f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        else:
            epochs, step = self._stamp()
            name = self.ssc.layout.ckpt_name(epochs, step, self.FILE_EXTENSION, self._label(self._role))
        return os.path.join(str(self.dirpath or self.ssc.ckpts_dir), name)

    def _find_last_checkpoints(self, trainer: pl.Trainer) -> set[str]:
        """``ckpt_path="last"`` resumes from the scenario's most advanced checkpoint."""
        last = self.ssc.store.resume_target(self.FILE_EXTENSION)
        return {last.path} if last is not None else set()

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Resolve the folder, install the crash-safe IO and, on rank 0, take the lock (``fit``)."""
        self._trainer = trainer
        super().setup(trainer, pl_module, stage)
        _lit_state.check_labels(self, trainer)
        install_io(trainer, self.ssc.store, self.async_save)
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
        self.ssc.store.new_timeline()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Release the scenario's lock taken in :meth:`setup`."""
        if stage == "fit":
            self._release()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning's ``save_last``, then every rank waits for the last background write."""
        super().on_train_end(trainer, pl_module)
        finish_writes(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Lightning's ``save_on_exception`` (a monitored callback's is its latest state, not a
        ``best`` file), then release the lock (``teardown`` is not called then)."""
        try:
            if self.monitor is None or not self._should_save_on_exception(trainer):
                super().on_exception(trainer, pl_module, exception)
            else:
                save = functools.partial(ModelCheckpoint.on_exception, self, trainer, pl_module, exception)
                _lit_state.save_as_latest(self, trainer, self._monitor_candidates(trainer), save)
        finally:
            io_of(trainer).wait(quietly=True)  # a failed write is warned about, the exception goes on
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _ModelCheckpoint__warn_if_dir_not_empty(self, dirpath: Any) -> None:
        """Silence Lightning's "directory not empty" warning: resuming is the normal case here."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """End-of-epoch saves (named with the epochs finished); an epoch cut short by ``max_steps``
        or a stop signal also ends here, and its save is a mid-epoch one (``_e1_s6``)."""
        with self._saving_as("epoch" if _lit_state.epoch_finished(trainer) else "step"):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Saves after validation: end-of-epoch ones after the epoch's last batch, else mid-epoch."""
        last_batch = _lit_state.epoch_finished(trainer)
        deferred = getattr(self, "_defer_save_until_validation", False)  # Lightning >= 2.5
        with self._saving_as("epoch" if last_batch and not deferred else "step"):
            super().on_validation_end(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record the scenario (name, merged config, hash, every rank's random states) once per save."""
        _lit_state.write_record(self, trainer, checkpoint)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Check the record, restore each rank's random states, adopt a stock callback's state.

        Raises:
            SucroseError: resuming a weights-only file, or ``strict_config=True`` and the config changed.
        """
        _lit_state.read_record_on_load(self, trainer, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        """Lightning's state plus the path of the latest-state file."""
        return {**super().state_dict(), "latest_model_path": self.latest_model_path}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the best-k state even when it was saved from another folder (a stock callback's).

        Files outside the scenario's folder are never deleted by pruning (Lightning checks that).
        """
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})
        self.latest_model_path = state_dict.get("latest_model_path", "") or ""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse to resume from a weights-only file (before Lightning's bare ``KeyError``).

        Raises:
            SucroseError: the checkpoint given as ``ckpt_path`` holds weights only.
        """
        loaded = getattr(trainer._checkpoint_connector, "_loaded_checkpoint", None)
        if loaded and _lit_state.siblings(self, trainer)[:1] == [self]:
            refusal = _lit_state.weights_only_refusal(loaded, trainer.ckpt_path)
            if refusal is not None:
                raise SucroseError(refusal)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Warn once about config keys this run never read (a typo in config.yaml is otherwise silent)."""
        if not self.warn_unused or self._unused_warned or not trainer.is_global_zero:
            return
        if _lit_state.siblings(self, trainer)[:1] != [self]:
            return
        self._unused_warned = True
        unused = self.ssc.unused_keys()
        if unused:
            warn_user(
                f"scenario {self.ssc.name!r}: {len(unused)} config key(s) were never read during fit: "
                + ", ".join(unused)
                + f" (set in {self.ssc.config_file.path}; a typo?)",
                SucroseConfigWarning,
            )

    # ------------------------------------------------------------------ writing

    def _save_monitor_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        """Top-k as Lightning does it, plus the latest state when it did not enter the top k."""
        before = self._last_checkpoint_saved
        super()._save_monitor_checkpoint(trainer, monitor_candidates)
        if self._last_checkpoint_saved == before:  # not among the top k: keep it as the latest state
            save = lambda: self._save_checkpoint(trainer, self.latest_model_path)  # noqa: E731
            _lit_state.save_as_latest(self, trainer, monitor_candidates, save)
        else:
            previous, self.latest_model_path, self._latest_step = self.latest_model_path, "", None
            self._drop_latest(trainer, previous)

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        """Lightning's once-per-step rule, where a step whose only save was the latest state (stock
        Lightning saves nothing then) may still save its top k (e.g. deferred to the validation)."""
        if self._latest_step != trainer.global_step:
            return super()._should_skip_saving_checkpoint(trainer)
        saved, self._last_global_step_saved = self._last_global_step_saved, -1
        try:
            return super()._should_skip_saving_checkpoint(trainer)
        finally:
            self._last_global_step_saved = saved

    def _drop_latest(self, trainer: pl.Trainer, previous: str) -> None:
        """A superseded latest state goes, even the one this run resumed from (it is older now)."""
        if previous and previous != self.latest_model_path and Path(previous).parent == self.ssc.ckpts_dir:
            self._remove_checkpoint(trainer, previous)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Save through ``trainer.save_checkpoint``; report a failed write on every rank; prune."""
        io = trainer.strategy.checkpoint_io
        deferring = io.deferring_errors() if isinstance(io, SucroseCheckpointIO) else contextlib.nullcontext()
        self._saving = True
        try:
            with deferring:
                super()._save_checkpoint(trainer, filepath)
        except OSError as err:  # a custom IO or strategy that writes itself
            raise CheckpointError(f"could not save checkpoint {filepath}: {err}") from err
        finally:
            self._saving = False
        failure = io.deferred if isinstance(io, SucroseCheckpointIO) else None
        message = trainer.strategy.broadcast(
            None if failure is None else f"{type(failure).__name__}: {failure}"
        )
        if failure is not None:
            raise failure
        if message is not None:
            raise CheckpointError(f"rank 0 could not save checkpoint {filepath}: {message}")
        if trainer.is_global_zero:
            io_of(trainer).after_write(lambda: _lit_state.keep_last(self))  # completed files only


def make_callbacks(ssc: ScenarioLike, **options: Any) -> list[Callback]:
    """The Lightning callbacks of a scenario: ``Trainer(callbacks=ssc.callbacks())``.

    Args:
        ssc: the scenario.
        **options: passed to :class:`SucroseCheckpoint` (``tag``, ``keep_last``,
            ``strict_config``, ``warn_unused``, and ``ModelCheckpoint``'s own options).

    Returns:
        ``[SucroseCheckpoint(ssc, **options), SucrosePreemption(ssc)]``: the checkpoints, and the
        stop-signal handling (SIGTERM, SLURM's requeue signal: save, stop, requeue). Add more
        ``SucroseCheckpoint(ssc, tag=...)`` for other retention rules (the last 2 plus the best 3).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> [type(c).__name__ for c in make_callbacks(ssc, every_n_train_steps=500, keep_last=5)]
        ['SucroseCheckpoint', 'SucrosePreemption']
    """
    return [SucroseCheckpoint(ssc, **options), SucrosePreemption(ssc)]
