"""The scenario's Lightning loggers: a ``TensorBoardLogger`` rooted at ``logs/<scenario>``.

Used as ``Trainer(logger=ssc.logger())``. This module imports lightning; ``import
sucrose_lightning`` does not import it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from ._atomic import refuse_symlink
from ._protocol import ScenarioLike
from .errors import SucroseError

__all__ = ["SucroseLogger", "make_logger"]

_FIXED_LOGGER_OPTIONS = ("save_dir", "name", "version", "root_dir")


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
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> SucroseLogger(ssc).log_dir == str(ssc.logs_dir)
        True
    """

    def __init__(self, ssc: ScenarioLike, *, log_config: bool = True, **options: Any) -> None:
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

        final = folder / self.NAME_HPARAMS_FILE
        if os.path.islink(final):  # the rename would not follow it, but a planted link is refused loudly
            refuse_symlink(final, "hyperparameters file")
        fd, tmp = tempfile.mkstemp(prefix=".hparams.", suffix=".yaml.tmp", dir=folder)  # O_EXCL
        os.close(fd)
        try:
            save_hparams_to_yaml(tmp, self.hparams)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise


def make_logger(ssc: ScenarioLike, **options: Any) -> TensorBoardLogger:
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
        >>> ssc = sucrose.SucroseScenario(ws, "base/case1")
        >>> logger = make_logger(ssc, default_hp_metric=False)
        >>> Path(logger.log_dir).relative_to(ws).as_posix()
        'logs/base/case1'
    """
    return SucroseLogger(ssc, **options)
