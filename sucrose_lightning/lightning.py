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
import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from . import storage
from .config import same_value
from .errors import CheckpointError, LockError, SucroseConfigWarning, SucroseError, SucroseWarning
from .layout import CkptFile
from .scenario import META_KEY

if TYPE_CHECKING:  # pragma: no cover
    from .scenario import SucroseScenario

__all__ = ["SucroseCheckpoint", "SucroseLogger", "config_diff", "make_callbacks", "make_logger"]

_FIXED_CKPT_OPTIONS = ("dirpath", "filename", "enable_version_counter")
_FIXED_LOGGER_OPTIONS = ("save_dir", "name", "version", "root_dir")
_UNSET = object()


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Lines ``key: old -> new`` for every key whose value differs between two merged configs.

    A key present on one side only shows ``(unset)`` on the other.

    Examples:
        >>> config_diff({"lr": 0.1, "depth": 2}, {"lr": 0.01, "width": 8})
        ['depth: 2 -> (unset)', 'lr: 0.1 -> 0.01', 'width: (unset) -> 8']
    """
    lines = []
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key, _UNSET), new.get(key, _UNSET)
        if before is _UNSET or after is _UNSET or not same_value(before, after):
            lines.append(f"{key}: {_show(before)} -> {_show(after)}")
    return lines


def _show(value: Any) -> str:
    return "(unset)" if value is _UNSET else repr(value)


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
        >>> # trainer = Trainer(callbacks=[SucroseCheckpoint(ssc, keep_last=3)])
        >>> # trainer = Trainer(callbacks=ssc.callbacks(monitor="val_loss", save_top_k=2))
    """

    def __init__(
        self,
        ssc: SucroseScenario,
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
        self._lock: storage.ScenarioLock | None = None
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

        Examples:
            >>> # base_case1_e3.ckpt at the end of the 3rd epoch, base_case1_e3_s1500.ckpt mid-epoch
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
            lock = storage.ScenarioLock(self.ssc.layout)
            try:
                lock.acquire()
            except SucroseError as err:
                problem = str(err)
            else:
                self._lock = lock
                storage.cleanup_temps(self.ssc.layout)
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
        meta = checkpoint.get(META_KEY)
        if not isinstance(meta, dict):
            warnings.warn(
                f"the checkpoint resumed by scenario {self.ssc.name!r} was not written by sucrose: its "
                "config and random states are unknown (the resumed run may not repeat exactly)",
                SucroseWarning,
                stacklevel=2,
            )
            return
        problems = []
        if meta.get("scenario") not in (None, self.ssc.name):
            problems.append(f"it was written by scenario {meta.get('scenario')!r}")
        recorded = meta.get("config")
        if isinstance(recorded, dict):
            problems.extend(config_diff(recorded, self.ssc.hparams()))
        if problems:
            text = (
                f"resuming scenario {self.ssc.name!r} from a checkpoint whose config differs from "
                f"{self.ssc.config_file.path}:\n  " + "\n  ".join(problems)
            )
            if self.strict_config:
                raise SucroseError(text + "\n(strict_config=True: refusing to resume)")
            warnings.warn(text, SucroseConfigWarning, stacklevel=2)
        from lightning.pytorch.trainer.states import TrainerFn

        rng = meta.get("rng")
        if isinstance(rng, dict) and trainer.state.fn == TrainerFn.FITTING:
            try:
                storage.restore_rng(rng)
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
                self._make_room(Path(filepath))
                storage.atomic_save(checkpoint, Path(filepath), self.ssc.layout)
                self._prune()
            except Exception as err:  # reported on every rank below
                failure, message = err, f"{type(err).__name__}: {err}"
        del checkpoint
        message = trainer.strategy.broadcast(message, src=0)
        if failure is not None:
            raise failure
        if message is not None:
            raise CheckpointError(f"rank 0 could not save checkpoint {filepath}: {message}")

    def _make_room(self, final: Path) -> None:
        """Move checkpoints at or past the one about to be written into ``.abandoned/``."""
        parsed = self.ssc.layout.parse(final.name, self.FILE_EXTENSION)
        if parsed is None:
            return
        order = CkptFile(*parsed, str(final)).order
        ext = self.FILE_EXTENSION
        newer = list(itertools.takewhile(lambda c: c.order >= order, self.ssc.layout.newest_first(ext)))
        if newer:
            reason = f"saving {final.name} of a run resumed from an older checkpoint"
            storage.move_aside(newer, self.ssc.layout, reason)

    def _prune(self) -> None:
        if self.keep_last is None:
            return
        files = self.ssc.ckpts()
        for old in files[: max(0, len(files) - self.keep_last)]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(old.path)


def make_callbacks(ssc: SucroseScenario, **options: Any) -> list[Callback]:
    """The Lightning callbacks of a scenario: ``Trainer(callbacks=ssc.callbacks())``.

    Args:
        ssc: the scenario.
        **options: passed to :class:`SucroseCheckpoint` (``keep_last``, ``strict_config``,
            ``warn_unused``, and ``ModelCheckpoint``'s own options).

    Returns:
        ``[SucroseCheckpoint(ssc, **options)]``.

    Examples:
        >>> # trainer = Trainer(callbacks=ssc.callbacks(every_n_train_steps=500, keep_last=5))
    """
    return [SucroseCheckpoint(ssc, **options)]


class SucroseLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` writing to exactly ``<workspace>/<logs_folder>/<scenario>``.

    No ``version_N`` folder: a resumed run continues the same event files' folder. The
    merged config is logged as hyperparameters (together with the module's own) and
    ``hparams.yaml`` is rewritten at the first save of each run and whenever the
    hyperparameters change, so it never goes stale on resume.

    Args:
        ssc: the scenario.
        log_config: log the merged config as hyperparameters.
        **options: passed to ``TensorBoardLogger`` (``save_dir``, ``name`` and ``version``
            are fixed by the scenario).

    Examples:
        >>> # logger = SucroseLogger(ssc); logger.log_dir == str(ssc.logs_dir)
    """

    def __init__(self, ssc: SucroseScenario, *, log_config: bool = True, **options: Any) -> None:
        fixed = [k for k in _FIXED_LOGGER_OPTIONS if k in options]
        if fixed:
            raise SucroseError(
                f"the logger of scenario {ssc.name!r} writes to {ssc.logs_dir}; drop "
                + ", ".join(f"{k}=" for k in fixed)
            )
        save_dir = ssc.workspace / ssc.config_file.settings.logs_folder
        super().__init__(save_dir=str(save_dir), name="", version=ssc.name, **options)
        self.ssc = ssc
        self.log_config = log_config
        self._config_logged = False
        self._hparams_dirty = True  # hparams.yaml to be (re)written at the next save()

    @pl.utilities.rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        """Log ``params`` together with the merged config (the config only the first time)."""
        from lightning.fabric.utilities.logger import _convert_params

        params = dict(_convert_params(params) or {})
        if self.log_config and not self._config_logged:
            params = {**self.ssc.hparams(), **params}
            self._config_logged = True
        self._hparams_dirty = True
        super().log_hyperparams(params, metrics=metrics, step=step)

    @pl.utilities.rank_zero_only
    def save(self) -> None:
        """Flush, and (re)write ``hparams.yaml`` when this run's hyperparameters changed it.

        Lightning calls ``save()`` after every metrics log; the file is rewritten only the
        first time in this run (so a resumed run replaces the stale file of the previous one)
        and after ``log_hyperparams`` changed what it holds.
        """
        if self.log_config and not self._config_logged:
            self.log_hyperparams({})
        super().save()
        folder = Path(self.log_dir)
        if not self._hparams_dirty or not folder.is_dir():
            return
        self._hparams_dirty = False
        from lightning.pytorch.core.saving import save_hparams_to_yaml

        fd, tmp = tempfile.mkstemp(prefix=".hparams.", suffix=".yaml.tmp", dir=folder)
        os.close(fd)
        try:
            save_hparams_to_yaml(tmp, self.hparams)
            os.replace(tmp, folder / self.NAME_HPARAMS_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise


def make_logger(ssc: SucroseScenario, **options: Any) -> TensorBoardLogger:
    """Lightning's ``TensorBoardLogger`` for a scenario: ``Trainer(logger=ssc.logger())``.

    Its ``log_dir`` is exactly ``<workspace>/<logs_folder>/<scenario>`` (``logs/base/case1``),
    so ``tensorboard --logdir <workspace>/logs`` shows one run per scenario, named by its path,
    and a resumed run continues the same curves.

    Args:
        ssc: the scenario.
        **options: passed to :class:`SucroseLogger` / ``TensorBoardLogger`` (``log_graph``,
            ``default_hp_metric``, ``prefix``, ``log_config``, ...).

    Returns:
        A :class:`SucroseLogger` (a ``TensorBoardLogger``).

    Examples:
        >>> # trainer = Trainer(logger=ssc.logger(default_hp_metric=False))
    """
    return SucroseLogger(ssc, **options)
