"""The ``train.py`` of the LightningCLI tests: ``python train.py fit --scenario base ...``.

With ``SUCROSE_TEST_KILL_AT=<global step>`` it prints ``KILL-ME <step>`` after that batch and
waits on its stdin, so the test can SIGKILL it at exactly that point (no timing involved).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sucrose_lightning.lightning_cli import SucroseCLI


class Net(pl.LightningModule):
    def __init__(self, in_dim: int, hidden_dim: int, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Data(pl.LightningDataModule):
    def __init__(self, in_dim: int, n: int = 32, batch_size: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, in_dim, generator=g)
        self.ds = TensorDataset(x, x.sum(1, keepdim=True))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.ds, batch_size=self.batch_size, shuffle=True)


class KillPoint(pl.Callback):
    """Announce the given global step on stdout, then block until killed."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            print(f"KILL-ME {self.step}", flush=True)
            sys.stdin.read()  # the parent SIGKILLs us while we wait here


if __name__ == "__main__":
    at = os.environ.get("SUCROSE_TEST_KILL_AT")
    defaults = {"callbacks": [KillPoint(int(at))]} if at else {}
    SucroseCLI(
        Net, Data, trainer_defaults={"enable_progress_bar": False, "enable_model_summary": False, **defaults}
    )
