"""The scenario's Lightning loggers: ``ssc.logger("tensorboard" | "csv" | "mlflow" | "wandb" | [...])``.

:func:`make_logger` picks the backend(s); :class:`SucroseLogger` is the TensorBoard one
(``logs/<scenario>``, no ``version_N``); CSV, MLflow and W&B live in
:mod:`sucrose_lightning.trackers`. This module imports lightning; ``import sucrose_lightning``
does not import it.

What the TensorBoard logger adds to Lightning's ``TensorBoardLogger``:

* nothing is written by a run that logs nothing (refused by the scenario's lock, or with
  nothing left to train): the event file is opened at the first metric;
* a ``fit`` opens its event file with ``purge_step`` = the global step of the checkpoint it
  resumes from (0 for a fresh start), so TensorBoard drops the points that the dead run logged
  after that checkpoint (ghosts) and shows the resumed run's instead;
* the hyperparameters (merged config + the module's) live in one event file of their own,
  ``events.hparams.sucrose.tfevents``, replaced by every run that logs: the
  HPARAMS tab shows the latest config (TensorBoard keeps the *first* session of a run);
* ``hparams.yaml`` is rewritten atomically by every run that logs, with the usual file mode.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from ._atomic import atomic_write_bytes
from ._protocol import ScenarioLike
from ._tracking import (
    after_older_event_files,
    fixed_options,
    missing,
    write_hparams_yaml,
)
from .errors import SucroseError
from .trackers import DeferredTracker

__all__ = ["HPARAMS_EVENTS", "KINDS", "SucroseLogger", "make_logger"]

_FIXED_LOGGER_OPTIONS = ("save_dir", "name", "version", "root_dir", "log_dir")

#: The backends ``ssc.logger()`` knows.
KINDS = ("tensorboard", "csv", "mlflow", "wandb")

#: The event file holding a scenario's hyperparameters (sorts before every other event file).
HPARAMS_EVENTS = "events.hparams.sucrose.tfevents"


class SucroseLogger(DeferredTracker, TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` writing to exactly ``<workspace>/<logs_folder>/<scenario>``.

    No ``version_N`` folder: a resumed run continues the same folder, and its event file
    starts with ``purge_step`` at the resumed checkpoint's global step so the dead run's later
    points are dropped. The merged config is logged as hyperparameters together with the
    module's own, in one event file replaced by each run (the HPARAMS tab shows the latest).

    Args:
        ssc: the scenario.
        log_config: log the merged config as hyperparameters.
        **options: passed to ``TensorBoardLogger`` (``save_dir``, ``name`` and ``version``
            are fixed by the scenario; ``purge_step=`` overrides the automatic one).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> logger = SucroseLogger(ssc)
        >>> logger.log_dir == str(ssc.logs_dir)
        True
        >>> logger.log_hyperparams({"lr": 0.1})
        >>> logger.save()
        >>> ssc.logs_dir.exists()  # nothing logged yet: no file
        False
    """

    def __init__(self, ssc: ScenarioLike, *, log_config: bool = True, **options: Any) -> None:
        fixed_options(ssc, "tensorboard", options, _FIXED_LOGGER_OPTIONS)
        save_dir = ssc.workspace / ssc.config_file.settings.logs_folder
        super().__init__(save_dir=str(save_dir), name="", version=ssc.name, **options)
        self.ssc = ssc
        self.log_config = log_config
        self._config_logged = False
        self._hp_metrics: dict[str, Any] = {}
        self._hparams_dirty = True  # hparams.yaml and the hparams event file to (re)write

    # ------------------------------------------------------------------ the writer

    def _open(self) -> Any:
        """The ``SummaryWriter``, opened with the resumed run's ``purge_step``."""
        if self._experiment is not None:
            return self._experiment
        from torch.utils.tensorboard import SummaryWriter

        kwargs = dict(self._kwargs)
        fitting, step = self.start_point()
        if fitting and step is not None:
            kwargs.setdefault("purge_step", step)
        if kwargs.get("purge_step") is not None:
            after_older_event_files(Path(self.log_dir))
        self._experiment = SummaryWriter(log_dir=self.log_dir, **kwargs)
        self._write_hparams()
        return self._experiment

    @pl.utilities.rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Learn the trainer (and so the resumed step); log the graph when ``log_graph=True``."""
        self._tap(model)
        super().log_graph(model, input_array)

    @pl.utilities.rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        """Record ``params`` (with the merged config); written when the run logs its first metric."""
        params = dict(_convert_params(params) or {})
        if self.log_config and not self._config_logged:
            params = {**self.ssc.hparams(), **params}
            self._config_logged = True
        self.hparams.update(params)
        if metrics is not None:
            metrics = metrics if isinstance(metrics, dict) else {"hp_metric": metrics}
            self._hp_metrics.update(metrics)
        self._hparams_dirty = True
        if self._experiment is not None:
            self._write_hparams()
        if metrics:
            self.log_metrics(metrics, step or 0)

    def _write_hparams(self) -> None:
        """Replace the hparams event file (latest config) and ``hparams.yaml``."""
        if self.log_config and not self._config_logged:
            self.log_hyperparams({})
            return
        folder = Path(self.log_dir)
        write_hparams_events(
            folder, self._sanitize_params(_flatten_dict(dict(self.hparams))), self._hp_metric_values()
        )
        write_hparams_yaml(folder, _convert_params(self.hparams), self.NAME_HPARAMS_FILE)
        self._hparams_dirty = False

    def _hp_metric_values(self) -> dict[str, float]:
        """The metrics the HPARAMS tab lists (``hp_metric`` by default; log it to fill the column)."""
        metrics = dict(self._hp_metrics)
        if not metrics and self._default_hp_metric:
            metrics = {"hp_metric": -1}
        return {k: float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}

    @pl.utilities.rank_zero_only
    def save(self) -> None:
        """Flush; nothing at all when this run has not logged anything yet."""
        if self._experiment is None:
            return
        self._experiment.flush()
        if self._hparams_dirty:
            self._write_hparams()

    @pl.utilities.rank_zero_only
    def finalize(self, status: str) -> None:
        """Flush and close the writer. A run that trained but logged no point still records its
        hyperparameters; one that never trained (refused, nothing left to do) leaves nothing."""
        if self._experiment is None and not self.trained():
            return
        writer = self._open()
        self.save()
        writer.close()


def write_hparams_events(folder: Path, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Write :data:`HPARAMS_EVENTS` in ``folder`` atomically: TensorBoard's hparams session.

    The file sorts before every event file of the folder and holds a session start and the
    experiment, session-start and session-end summaries of ``params`` (naming ``metrics`` as
    the hparams metrics), all at step -1. Every event file the logger opens starts with
    ``purge_step``; TensorBoard drops earlier events at that step or later, and step -1 is
    below any of them, so the hyperparameters survive every purge. Its session start is the
    run's first: TensorBoard's hparams loader treats only the later ones as restarts.
    """
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.summary.writer.record_writer import RecordWriter
    from torch.utils.tensorboard.summary import hparams

    exp, ssi, sei = hparams(params, metrics)  # type: ignore[no-untyped-call]
    now = time.time()
    events = [
        Event(wall_time=now, step=-1, file_version="brain.Event:2"),
        Event(wall_time=now, step=-1, session_log=SessionLog(status=SessionLog.START)),
    ]
    events += [Event(wall_time=now, step=-1, summary=s) for s in (exp, ssi, sei)]
    buffer = io.BytesIO()  # a few hundred bytes
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / HPARAMS_EVENTS, buffer.getvalue(), "hyperparameters events file", mode=0o666)


def _one(ssc: ScenarioLike, kind: str, options: dict[str, Any]) -> Logger:
    if kind == "tensorboard":
        return SucroseLogger(ssc, **options)
    if kind == "csv":
        from .trackers import SucroseCSVLogger

        return SucroseCSVLogger(ssc, **options)
    if kind == "mlflow":
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise missing("mlflow", "mlflow") from None
        from ._mlflow import SucroseMLFlowLogger

        return SucroseMLFlowLogger(ssc, **options)
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise missing("wandb", "wandb") from None
    from ._wandb import SucroseWandbLogger

    return SucroseWandbLogger(ssc, **options)


def make_logger(ssc: ScenarioLike, kind: str | Sequence[str] = "tensorboard", **options: Any) -> Any:
    """Lightning logger(s) for a scenario: ``Trainer(logger=ssc.logger())``.

    ``kind`` is one of ``"tensorboard"`` (default), ``"csv"``, ``"mlflow"``, ``"wandb"``, or a
    list of them; every backend keeps one run per scenario across resumes (see
    ``docs/tracking.md``). With one kind, ``options`` go to its logger; with a list, give
    each backend's options under its name (``mlflow={"log_model": True}``).

    Args:
        ssc: the scenario.
        kind: the backend, or a list of backends.
        **options: the backend's options (for TensorBoard: ``log_graph``,
            ``default_hp_metric``, ``prefix``, ``log_config``, ...).

    Returns:
        One Lightning ``Logger``, or a list of them when ``kind`` is a list.

    Raises:
        SucroseError: an unknown kind, an option the scenario decides, options of a list
            not keyed by kind, or a backend whose package is not installed (with the
            ``pip install`` line).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> logger = make_logger(ssc, default_hp_metric=False)
        >>> Path(logger.log_dir).relative_to(ws).as_posix()
        'logs/base/case1'
        >>> [type(lg).__name__ for lg in make_logger(ssc, ["tensorboard", "csv"])]
        ['SucroseLogger', 'SucroseCSVLogger']
    """
    if isinstance(kind, str):
        _check_kind(ssc, kind)
        return _one(ssc, kind, options)
    kinds = list(kind)
    for k in kinds:
        _check_kind(ssc, k)
    if len(set(kinds)) != len(kinds):
        raise SucroseError(f"ssc.logger({kinds!r}) names a backend twice; each logs the whole scenario")
    stray = [k for k in options if k not in kinds]
    if stray:
        raise SucroseError(
            f"ssc.logger({kinds!r}): with several backends, give each one's options under its name, "
            f"e.g. ssc.logger({kinds!r}, {kinds[0]}={{...}}); not understood: "
            + ", ".join(f"{k}=" for k in stray)
        )
    out = []
    for k in kinds:
        opts = options.get(k) or {}
        if not isinstance(opts, dict):
            raise SucroseError(f"ssc.logger(..., {k}=...) takes a dict of {k} options, not {opts!r}")
        out.append(_one(ssc, k, dict(opts)))
    return out


def _check_kind(ssc: ScenarioLike, kind: Any) -> None:
    if kind not in KINDS:
        from .errors import did_you_mean

        raise SucroseError(
            f"scenario {ssc.name!r}: unknown logger kind {kind!r}{did_you_mean(str(kind), KINDS)}; "
            f"choose from {', '.join(KINDS)}"
        )
