"""CSV, MLflow and W&B loggers that follow the scenario: one run per scenario across every resume.

Made by ``ssc.logger("csv" | "mlflow" | "wandb")``. Each is Lightning's own logger with the
scenario's folder, name and run id filled in, and opened lazily: a run that logs nothing
(refused by the lock, nothing left to train) creates no file and no tracker run.

* ``csv``: ``logs/<scenario>/metrics.csv``, no version folders; a resumed ``fit`` rewrites the
  file without the rows at or after the resumed checkpoint's step, then appends.
* ``mlflow``: experiment named after the workspace folder (``experiment_name=``), run named by
  the scenario path, run id kept with the scenario (``<ckpts>/<scenario>/.sucrose-runs.json``),
  the merged config as params. MLflow cannot delete points: see ``docs/tracking.md``.
* ``wandb``: run id kept with the scenario, ``resume="allow"``, run name = scenario path,
  group = parent domain, the merged config as the run config.

A ``fit`` resumed from a checkpoint continues the recorded run; a ``fit`` from no checkpoint
starts the scenario over and so starts a new run (MLflow moves the old one to its trash).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from . import _runids
from ._atomic import atomic_write_bytes
from ._protocol import ScenarioLike
from ._tracking import Deferred, TrainerTap, fixed_options, write_hparams_yaml
from .names import parent_of

__all__ = [
    "DeferredTracker",
    "SucroseCSVLogger",
    "merged_params",
    "pend_params",
    "scenario_group",
    "store_run",
    "stored_run",
]

log = logging.getLogger("sucrose_lightning")


def merged_params(ssc: ScenarioLike, params: Any, first: bool) -> dict[str, Any]:
    """``params`` as a dict, with the merged config under it the first time."""
    out = dict(_convert_params(params) or {})
    return {**ssc.hparams(), **out} if first else out


def pend_params(logger: Any, params: Any) -> None:
    """Add ``params`` (and the merged config, the first time) to what a run-id tracker sends when its
    run opens: ``logger._pending``, with ``logger.log_config`` and ``logger._config_logged``."""
    first = logger.log_config and not logger._config_logged
    logger._pending.update(merged_params(logger.ssc, params, first))
    logger._config_logged = logger._config_logged or first


class DeferredTracker(TrainerTap):
    """Mixin of the sucrose loggers: the run object opens at first use; ``log_graph`` taps the trainer.

    A logger using it defines ``_open()``, which opens (or resumes) the run, stores it in
    ``_experiment`` and returns it.
    """

    _experiment: Any

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The logger's run object (a writer, a W&B run), opened at first use.

        Until then it is a :class:`~sucrose_lightning._tracking.Deferred` stand-in.
        """
        if self._experiment is not None:
            return self._experiment
        return Deferred(self._open)

    def _open(self) -> Any:
        raise NotImplementedError

    @pl.utilities.rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Learn the trainer, and so where a resumed run starts."""
        self._tap(model)


def scenario_group(ssc: ScenarioLike) -> str | None:
    """The parent domain of the scenario (``base`` for ``base/case1``), or ``None`` at the top."""
    return parent_of(ssc.name)


# --------------------------------------------------------------------------- CSV


class _ScenarioCSVWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, continuing ``metrics.csv`` instead of deleting it.

    With ``drop_from``, the rows at or after that step are dropped first (one atomic rewrite).
    """

    def __init__(self, log_dir: str, drop_from: int | None) -> None:
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = list(reader)
        self.metrics_keys = sorted(keys)
        kept = rows if drop_from is None else [r for r in rows if _step_of(r) < drop_from]
        if len(kept) != len(rows):
            _rewrite_csv(path, self.metrics_keys, kept)
            log.info("%s: dropped %d row(s) at step >= %s", path, len(rows) - len(kept), drop_from)

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an existing ``metrics.csv`` here; a resumed run continues it."""


def _step_of(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


def _rewrite_csv(path: Path, keys: list[str], rows: list[dict[str, str]]) -> None:
    """Replace ``metrics.csv`` by ``rows`` through the one atomic writer, mode as Lightning's own file."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode("utf-8"), "metrics file", mode=0o666)


class SucroseCSVLogger(DeferredTracker, CSVLogger):
    """Lightning's ``CSVLogger`` writing ``<workspace>/<logs_folder>/<scenario>/metrics.csv``.

    No ``version_N`` folder. A resumed ``fit`` keeps the rows before the resumed checkpoint's
    global step, drops the later ones (the dead run's ghosts) and appends; a ``fit`` from no
    checkpoint starts the file over. ``hparams.yaml`` (merged config + the module's
    hyperparameters) is rewritten by every run that logs.

    Args:
        ssc: the scenario.
        log_config: include the merged config in the hyperparameters.
        **options: passed to ``CSVLogger`` (``prefix``, ``flush_logs_every_n_steps``).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base")
        >>> logger = SucroseCSVLogger(ssc)
        >>> logger.log_metrics({"loss": 0.5}, step=0)
        >>> logger.save()
        >>> (ssc.logs_dir / "metrics.csv").read_text().splitlines()
        ['loss,step', '0.5,0']
    """

    def __init__(self, ssc: ScenarioLike, *, log_config: bool = True, **options: Any) -> None:
        fixed_options(ssc, "csv", options, ("save_dir", "name", "version", "root_dir", "log_dir"))
        save_dir = ssc.workspace / ssc.config_file.settings.logs_folder
        super().__init__(save_dir=str(save_dir), name="", version=ssc.name, **options)
        self.ssc = ssc
        self.log_config = log_config
        self.hparams: dict[str, Any] = {}
        self._config_logged = False
        self._hparams_dirty = True

    @property
    def log_dir(self) -> str:
        """``<workspace>/<logs_folder>/<scenario>``."""
        return str(self.ssc.logs_dir)

    def _open(self) -> Any:
        """The CSV writer (a resumed ``fit`` first drops the ghost rows)."""
        if self._experiment is None:
            fitting, step = self.start_point()
            self._experiment = _ScenarioCSVWriter(self.log_dir, step if fitting else None)
        return self._experiment

    @pl.utilities.rank_zero_only
    def log_hyperparams(self, params: Any = None) -> None:
        """Record ``params`` (with the merged config); written with the first metrics."""
        first = self.log_config and not self._config_logged
        self.hparams.update(merged_params(self.ssc, params, first))
        self._config_logged = self._config_logged or first
        self._hparams_dirty = True

    @pl.utilities.rank_zero_only
    def save(self) -> None:
        """Write the rows logged so far; nothing when this run has not logged anything."""
        if self._experiment is None:
            return
        if self.log_config and not self._config_logged:
            self.log_hyperparams({})
        super().save()
        if self._hparams_dirty:
            write_hparams_yaml(Path(self.log_dir), self.hparams)
            self._hparams_dirty = False

    @pl.utilities.rank_zero_only
    def finalize(self, status: str) -> None:
        """Write what is left (a run that logged nothing leaves nothing)."""
        self.save()


def stored_run(ssc: ScenarioLike, kind: str) -> dict[str, Any] | None:
    """The run of ``kind`` recorded with the scenario."""
    return _runids.read_run(ssc.ckpts_dir, kind)


def store_run(ssc: ScenarioLike, kind: str, entry: dict[str, Any]) -> None:
    """Record the run of ``kind`` with the scenario."""
    _runids.write_run(ssc.ckpts_dir, kind, entry)
