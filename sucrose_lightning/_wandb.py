"""``ssc.logger("wandb")``: Lightning's ``WandbLogger``, one W&B run per scenario.

Imported only when asked for (it imports wandb). See :mod:`sucrose_lightning.trackers`.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

from ._protocol import ScenarioLike
from ._tracking import fixed_options
from .trackers import DeferredTracker, pend_params, scenario_group, store_run, stored_run

__all__ = ["SucroseWandbLogger"]

log = logging.getLogger("sucrose_lightning")


class SucroseWandbLogger(DeferredTracker, WandbLogger):
    """Lightning's ``WandbLogger`` logging every resume of a scenario into one W&B run.

    * run name: the scenario path (``base/case1``); group: its parent domain (``base``);
      project: ``project`` (default ``$WANDB_PROJECT``, else the workspace folder's name);
    * the run id is kept with the scenario (``<ckpts>/<scenario>/.sucrose-runs.json``) and the
      run is opened with ``resume="allow"``: a ``fit`` resumed from a checkpoint, ``validate``
      and ``test`` continue it; a ``fit`` from no checkpoint starts a new run (new id);
    * the run config is the merged config and the module's hyperparameters, updated by every
      run (``allow_val_change``): it shows the latest config;
    * W&B's files go to ``$WANDB_DIR`` when set, else ``<workspace>/wandb``.

    Args:
        ssc: the scenario.
        project: the W&B project.
        log_config: include the merged config in the run config.
        **options: passed to ``WandbLogger`` / ``wandb.init`` (``offline``, ``log_model``,
            ``entity``, ``tags``, ``prefix``, ...).
    """

    def __init__(
        self, ssc: ScenarioLike, *, project: str | None = None, log_config: bool = True, **options: Any
    ) -> None:
        fixed_options(ssc, "wandb", options, ("name", "id", "version", "group", "resume", "experiment"))
        save_dir = options.pop("save_dir", None) or options.pop("dir", None) or os.environ.get("WANDB_DIR")
        if not save_dir:
            save_dir = str(ssc.workspace)
        super().__init__(
            name=ssc.name,
            save_dir=save_dir,
            project=project or os.environ.get("WANDB_PROJECT") or ssc.workspace.name,
            group=scenario_group(ssc) or ssc.name,
            **options,
        )
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]  # wandb warns about the setting even when unset
        self.ssc = ssc
        self.log_config = log_config
        self._pending: dict[str, Any] = {}
        self._config_logged = False

    def _open(self) -> Any:
        """The ``wandb`` run, opened (or resumed under the scenario's stored id)."""
        if self._experiment is not None:
            return self._experiment

        fitting, step = self.start_point()
        stored = stored_run(self.ssc, "wandb")
        old_id = stored.get("id") if stored else None
        run_id = old_id if old_id and not (fitting and step == 0) else uuid.uuid4().hex[:12]
        self._id = self._wandb_init["id"] = run_id
        if run_id != old_id:
            store_run(self.ssc, "wandb", {"id": run_id, "project": self._project})
            if old_id:
                log.info("scenario %r starts over (no checkpoint): new W&B run %s", self.ssc.name, run_id)
        run = WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        self._flush_config()
        return run

    @pl.utilities.rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Record ``params`` (with the merged config); sent when the run opens."""
        pend_params(self, params)
        if self._experiment is not None:
            self._flush_config()

    def _flush_config(self) -> None:
        pend_params(self, {})  # the merged config, if nothing was logged yet
        if self._pending:
            params, self._pending = self._pending, {}
            WandbLogger.log_hyperparams(self, params)

    @pl.utilities.rank_zero_only
    def finalize(self, status: str) -> None:
        """Log checkpoints (``log_model``) and finish the run, so the next ``fit`` can resume it."""
        super().finalize(status)
        if self._experiment is not None:
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None
