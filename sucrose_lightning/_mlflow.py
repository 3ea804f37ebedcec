"""``ssc.logger("mlflow")``: Lightning's ``MLFlowLogger``, one MLflow run per scenario.

Imported only when asked for (it imports mlflow). See :mod:`sucrose_lightning.trackers`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.logger import _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger

from ._protocol import ScenarioLike
from ._tracking import Deferred, fixed_options
from .trackers import DeferredTracker, pend_params, scenario_group, store_run, stored_run

__all__ = ["SucroseMLFlowLogger", "default_tracking_uri"]

log = logging.getLogger("sucrose_lightning")

#: The longest param value MLflow takes (longer ones are cut, as Lightning does).
_PARAM_LIMIT = 6000


def default_tracking_uri(ssc: ScenarioLike) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<workspace>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ssc.workspace / 'mlflow.db'}"


class SucroseMLFlowLogger(DeferredTracker, MLFlowLogger):
    """Lightning's ``MLFlowLogger`` logging every resume of a scenario into one MLflow run.

    * experiment: ``experiment_name`` (default: the workspace folder's name);
    * run name: the scenario path (``base/case1``), tags ``sucrose.scenario`` and
      ``sucrose.parent``;
    * the run id is kept with the scenario (``<ckpts>/<scenario>/.sucrose-runs.json``): a
      ``fit`` resumed from a checkpoint, ``validate`` and ``test`` log into the same run; a
      ``fit`` from no checkpoint starts a new run and moves the old one to MLflow's trash;
    * params: the merged config and the module's hyperparameters. MLflow never changes a
      logged param: a key whose value changed since is recorded as the tag ``config.<key>``
      (latest value) and listed in the tag ``sucrose.config_changed``;
    * ``log_model=True|"all"`` logs the checkpoints as artifacts (Lightning's option).

    The tracking store is ``tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<workspace>/mlflow.db`` with artifacts in ``<workspace>/mlartifacts``);
    ``mlflow ui --backend-store-uri sqlite:///<workspace>/mlflow.db`` shows it.

    Args:
        ssc: the scenario.
        experiment_name: the MLflow experiment (default: the workspace folder's name).
        tracking_uri: the MLflow tracking store.
        log_config: log the merged config as params.
        **options: passed to ``MLFlowLogger`` (``tags``, ``log_model``, ``prefix``,
            ``artifact_location``, ``synchronous``).
    """

    def __init__(
        self,
        ssc: ScenarioLike,
        *,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        log_config: bool = True,
        **options: Any,
    ) -> None:
        fixed_options(ssc, "mlflow", options, ("run_name", "run_id", "save_dir"))
        uri = tracking_uri or default_tracking_uri(ssc)
        if uri == f"sqlite:///{ssc.workspace / 'mlflow.db'}":
            options.setdefault("artifact_location", (ssc.workspace / "mlartifacts").as_uri())
        tags = {
            "sucrose.scenario": ssc.name,
            "sucrose.parent": scenario_group(ssc) or "",
            **options.pop("tags", {}),
        }
        super().__init__(
            experiment_name=experiment_name or ssc.workspace.name,
            run_name=ssc.name,
            tracking_uri=uri,
            tags=tags,
            **options,
        )
        self.ssc = ssc
        self.log_config = log_config
        self._pending: dict[str, Any] = {}
        self._config_logged = False
        self._opening = False

    # ------------------------------------------------------------------ the run

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``MlflowClient``; the scenario's run is opened at first use."""
        if self._initialized:
            return self._mlflow_client
        return Deferred(self._open)

    @property
    def run_id(self) -> str | None:
        """The scenario's MLflow run id (opens the run)."""
        self._open()
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        """The MLflow experiment id (opens the run)."""
        self._open()
        return self._experiment_id

    def _open(self) -> Any:
        if self._initialized or self._opening:
            return self._mlflow_client
        self._opening = True
        try:
            return self._open_run()
        finally:
            self._opening = False

    def _open_run(self) -> Any:
        client = self._mlflow_client
        fitting, step = self.start_point()
        fresh = fitting and step == 0
        stored = stored_run(self.ssc, "mlflow")
        old_id = stored.get("run_id") if stored and stored.get("tracking_uri") == self._tracking_uri else None
        reused = None
        if old_id and not fresh:
            reused = self._usable(old_id)
        self._run_id = reused
        MLFlowLogger.experiment.fget(self)  # type: ignore[attr-defined]  # Lightning opens or creates the run
        if reused is None:
            store_run(
                self.ssc,
                "mlflow",
                {
                    "run_id": self._run_id,
                    "tracking_uri": self._tracking_uri,
                    "experiment_id": self._experiment_id,
                },
            )
            if old_id and old_id != self._run_id and self._usable(old_id):
                client.delete_run(old_id)
                log.info(
                    "scenario %r starts over (no checkpoint): MLflow run %s moved to the trash, new run %s",
                    self.ssc.name,
                    old_id,
                    self._run_id,
                )
        else:
            assert self._run_id is not None  # set by the branch above or read from the scenario
            client.update_run(self._run_id, status="RUNNING")
        self._flush_params()
        return client

    def _usable(self, run_id: str) -> str | None:
        """``run_id`` if that run still exists (not deleted) in the tracking store."""
        try:
            run = self._mlflow_client.get_run(run_id)
        except Exception:  # deleted from the store, or another store: start a new run
            log.warning("MLflow run %s of scenario %r is gone; starting a new run", run_id, self.ssc.name)
            return None
        return run_id if run.info.lifecycle_stage == "active" else None

    # ------------------------------------------------------------------ params

    @pl.utilities.rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Record ``params`` (with the merged config); sent when the run opens."""
        pend_params(self, params)
        if self._initialized:
            self._flush_params()

    def _flush_params(self) -> None:
        pend_params(self, {})  # the merged config, if nothing was logged yet
        if not self._pending:
            return
        from mlflow.entities import Param, RunTag

        params = {k: str(v)[:_PARAM_LIMIT] for k, v in _flatten_dict(self._pending).items()}
        self._pending = {}
        client = self._mlflow_client
        run_id = self._run_id
        assert run_id is not None  # params are flushed once the run is open
        have = client.get_run(run_id).data.params
        new = [Param(k, v) for k, v in params.items() if k not in have]
        changed = {k: v for k, v in params.items() if k in have and have[k] != v}
        for i in range(0, len(new), 100):
            client.log_batch(run_id, params=new[i : i + 100])
        if changed:
            tags = [RunTag(f"config.{k}", v) for k, v in changed.items()]
            tags.append(RunTag("sucrose.config_changed", ", ".join(sorted(changed))))
            for i in range(0, len(tags), 100):
                client.log_batch(run_id, tags=tags[i : i + 100])
            log.info(
                "MLflow keeps a param's first value; scenario %r records the changed key(s) %s as "
                "tags config.<key>",
                self.ssc.name,
                ", ".join(sorted(changed)),
            )
