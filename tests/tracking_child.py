"""Child processes of ``test_tracking.py``: train a scenario with some trackers, maybe stop and wait.

Forked from a forkserver that has torch, lightning, the trackers, mlflow and wandb imported.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import lit_helpers as H
import torch

import sucrose_lightning as sucrose

PRELOAD = [*H.PRELOAD, "sucrose_lightning.loggers", "sucrose_lightning.trackers", "tracking_child"]


class _StopAndWait(pl.Callback):
    """At global step ``step``: flush every logger, write ``marker``, then block until killed."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step < self.step:
            return
        for logger in trainer.loggers:
            logger.save()
        tmp = self.marker + ".tmp"
        Path(tmp).write_text(str(trainer.global_step))
        os.replace(tmp, self.marker)
        threading.Event().wait()  # SIGKILL comes here


def train(
    ws: str,
    name: str,
    kinds: list[str],
    max_epochs: int,
    env: dict[str, str],
    stop_step: int | None = None,
    marker: str | None = None,
) -> None:
    """Resume ``name`` from its newest checkpoint with ``ssc.logger(kinds)`` and fit to ``max_epochs``."""
    os.environ.update(env)
    H.quiet()
    torch.set_num_threads(1)
    ssc = sucrose.scenario(ws, name)
    pl.seed_everything(0, verbose=False)
    model = H.make_model(ssc)
    train_dl, _ = H.loaders(ssc)
    callbacks = ssc.callbacks(warn_unused=False)
    if stop_step is not None and marker is not None:
        callbacks.append(_StopAndWait(stop_step, marker))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=ssc.logger(kinds),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, train_dl, ckpt_path=ssc.last_ckpt())
