"""The Lightning quick start as a runnable script: a tiny regression model.

    python examples/lightning/train.py base/wide   # trains train.epochs epochs
    python examples/lightning/train.py base/wide   # again: resumes and trains train.epochs more

Checkpoints go to examples/lightning/ckpts/<scenario>/ (base_wide_e1.ckpt, ...), TensorBoard logs to
examples/lightning/logs/<scenario>/ (``tensorboard --logdir examples/lightning/logs``).
``--workspace DIR`` uses another folder holding a config.yaml.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose

WORKSPACE = Path(__file__).resolve().parent


class Regressor(pl.LightningModule):
    """A two-layer MLP whose sizes and learning rate come from the ``model.*`` keys."""

    def __init__(self, input_dim: int, hidden_dim: int, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()  # records exactly the values the config bound
        self.net = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class RandomData(pl.LightningDataModule):
    """Fixed random inputs whose target is their sum."""

    def __init__(self, size: int, batch_size: int, input_dim: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(size, input_dim, generator=g)
        self.data = TensorDataset(x, x.sum(dim=1, keepdim=True))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)


def main(name: str, workspace: Path = WORKSPACE) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    ssc = sucrose.scenario(workspace, name)
    pl.seed_everything(ssc["train.seed"], verbose=False)
    model = ssc.partial(Regressor, "model")()
    data = ssc.partial(RandomData, "data", input_dim=ssc["model.input_dim"])()
    last = ssc.last_ckpt()
    print(f"scenario {name}: " + (f"resuming from {Path(last).name}" if last else "starting fresh"))
    done = ssc.ckpts()[-1].epochs if last else 0

    trainer = pl.Trainer(
        max_epochs=done + ssc["train.epochs"],
        callbacks=ssc.callbacks(),
        logger=ssc.logger(),
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=4,
    )
    trainer.fit(model, data, ckpt_path=last)
    newest = Path(ssc.last_ckpt() or "-").name
    print(f"scenario {name}: {trainer.current_epoch} epochs, step {trainer.global_step}, newest {newest}")
    ssc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="base/wide", help="a domain of config.yaml")
    parser.add_argument("--workspace", type=Path, default=WORKSPACE, help="folder holding config.yaml")
    args = parser.parse_args()
    main(args.scenario, args.workspace)
