"""Shared pieces of the Lightning tests: a tiny module, data, a trainer factory, child processes.

Run as a script it is the DDP worker of ``test_lightning_ddp.py``::

    python tests/lit_helpers.py ddp <workspace> <scenario> <out.json>
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from child_procs import preloaded_forkserver
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose

CONFIG = """\
base:
  model.in_dim: 4
  model.hidden: 8
  optim.lr: 0.1
  data.n: 32
  data.batch_size: 8

base/case1:
  model.hidden: 6
"""

N_BATCHES = 4  # data.n / data.batch_size


def write_workspace(ws: Path, text: str = CONFIG) -> Path:
    """Create ``ws/config.yaml`` and return ``ws``."""
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "config.yaml").write_text(text)
    return ws


class TinyModule(pl.LightningModule):
    """A 2-layer MLP regressor whose hyperparameters are recorded with ``save_hyperparameters``."""

    def __init__(self, in_dim: int, hidden: int, lr: float = 0.1, act: str = "relu") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loaders(ssc: Any, val: bool = False) -> tuple[DataLoader, DataLoader | None]:
    """A shuffled train loader (and an unshuffled val loader) of fixed random data."""
    g = torch.Generator().manual_seed(1234)
    n, dim = ssc["data.n"], ssc["model.in_dim"]
    x = torch.randn(n, dim, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    ds = TensorDataset(x, y)
    bs = ssc["data.batch_size"]
    return DataLoader(ds, batch_size=bs, shuffle=True), (DataLoader(ds, batch_size=bs) if val else None)


def make_model(ssc: Any) -> TinyModule:
    return ssc.partial(TinyModule, "model", lr=ssc["optim.lr"])()


def trainer(ssc: Any, max_epochs: int, logger: bool = False, **ckpt_options: Any) -> pl.Trainer:
    """A quiet CPU trainer with the scenario's callbacks (and logger when asked)."""
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        callbacks=ssc.callbacks(**ckpt_options),
        logger=ssc.logger() if logger else False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )


def fit(
    ssc: Any,
    max_epochs: int,
    *,
    val: bool = False,
    logger: bool = False,
    ckpt: Any = "auto",
    seed: int = 0,
    **ckpt_options: Any,
) -> tuple[pl.Trainer, TinyModule]:
    """Seed, build, and fit to ``max_epochs`` resuming from ``ssc.last_ckpt()`` by default."""
    pl.seed_everything(seed, verbose=False)
    model = make_model(ssc)
    train_dl, val_dl = loaders(ssc, val=val)
    t = trainer(ssc, max_epochs, logger=logger, **ckpt_options)
    t.fit(model, train_dl, val_dl, ckpt_path=ssc.last_ckpt() if ckpt == "auto" else ckpt)
    return t, model


def quiet() -> None:
    """Silence Lightning's info lines and the usual CPU/num_workers warnings."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*never read during fit.*")
    warnings.filterwarnings("ignore", message=".*you defined a `validation_step`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*reclaimed the lock.*")


# --------------------------------------------------------------------------- child processes


PRELOAD = ["torch", "torch._dynamo", "lightning.pytorch", "sucrose_lightning.lightning", "lit_helpers"]


def forkserver() -> multiprocessing.context.BaseContext:
    """A forkserver context whose server has torch, lightning and this module imported."""
    return preloaded_forkserver(PRELOAD)


class _Die(pl.Callback):
    """SIGKILLs its own process: after the batch that reaches global step ``step``, or (``at="start"``)
    as training starts, after the checkpoint was restored."""

    def __init__(self, step: int = 0, at: str = "step") -> None:
        self.step, self.at = step, at

    def on_train_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.at == "start":
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.at == "step" and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _die_in_save(at: str) -> None:
    """Make the next checkpoint save SIGKILL its process: half-way through writing (``write``) or
    with the file complete but not yet renamed (``rename``)."""
    from sucrose_lightning import _atomic

    if at == "write":

        def dying(obj: Any, stream: Any) -> None:
            stream.write(b"PK\x03\x04 half a checkpoint")
            stream.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        _atomic._serialize = dying  # type: ignore[assignment]
    else:
        real = _atomic._serialize

        def complete_then_die(obj: Any, stream: Any) -> None:
            real(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        _atomic._serialize = complete_then_die  # type: ignore[assignment]


def child_train(
    ws: str, name: str, max_epochs: int, journal: str, die: tuple[str, int] | None = None
) -> None:
    """Child process body: resume the scenario from its newest checkpoint and train to ``max_epochs``.

    Appends ``<epochs>,<step>`` of the checkpoint it resumes from to ``journal`` before training.
    ``die`` makes the process SIGKILL itself at a chosen point: ``("step", n)`` after global step
    ``n``, ``("start", 0)`` right after restoring, ``("write", 0)`` / ``("rename", 0)`` inside
    the next save.
    """
    quiet()
    torch.set_num_threads(1)
    ssc = sucrose.scenario(ws, name)
    last = ssc.last_ckpt()
    start = next((c for c in ssc.ckpts() if c.path == last), None)
    with open(journal, "a") as f:
        f.write("0,0\n" if start is None else f"{start.epochs},{start.step or 0}\n")
        f.flush()
    pl.seed_everything(0, verbose=False)
    model = make_model(ssc)
    train_dl, _ = loaders(ssc)
    t = trainer(ssc, max_epochs)
    if die is not None:
        kind, value = die
        if kind in ("write", "rename"):
            _die_in_save(kind)
        else:
            t.callbacks.append(_Die(value, kind))
    t.fit(model, train_dl, ckpt_path=last)


def child_hold_lock(ws: str, name: str, ready: Any, done: Any) -> None:
    """Child process body: start training-side work (take the lock) and hold it until ``done``."""
    ssc = sucrose.scenario(ws, name)
    ssc.acquire_lock()
    ready.set()
    done.wait(30)


# --------------------------------------------------------------------------- DDP worker


def _ddp_main(ws: str, name: str, out: str) -> None:
    quiet()
    from sucrose_lightning import _atomic

    rank = int(os.environ.get("LOCAL_RANK", "0"))
    writes = Path(out).with_suffix(f".writes{rank}")
    real_save = _atomic.atomic_save

    def counting_save(obj: Any, final: Path) -> None:
        with open(writes, "a") as f:
            f.write(f"{final}\n")
        real_save(obj, final)

    _atomic.atomic_save = counting_save  # type: ignore[assignment]
    ssc = sucrose.scenario(ws, name)
    results = []
    for epochs in (2, 3):  # a first run, then a resumed one
        pl.seed_everything(0, verbose=False)
        model = make_model(ssc)
        train_dl, _ = loaders(ssc)
        last = ssc.last_ckpt()
        t = pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            max_epochs=epochs,
            callbacks=ssc.callbacks(async_save=os.environ.get("SUCROSE_TEST_ASYNC") == "1"),
            logger=ssc.logger(),
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=1,
        )
        t.fit(model, train_dl, ckpt_path=last)
        results.append(
            {
                "resumed_from": last,
                "epoch": t.current_epoch,
                "step": t.global_step,
                "last_after": ssc.last_ckpt(),
                "log_dir": t.logger.log_dir if t.logger else None,
            }
        )
    Path(out).with_suffix(f".rank{t.global_rank}.json").write_text(json.dumps(results))
    close_process_group()


class DropoutModule(TinyModule):
    """Dropout whose masks come from a per-rank seed: only a per-rank random state resumes it exactly."""

    def __init__(self, in_dim: int, hidden: int, lr: float = 0.1, act: str = "relu") -> None:
        super().__init__(in_dim, hidden, lr, act)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, 1))

    def setup(self, stage: str) -> None:
        torch.manual_seed(1000 + self.global_rank)
        atexit.register(close_process_group)  # in each spawned worker


def close_process_group() -> None:
    """End the gloo process group before the interpreter exits: left to the exit, gloo's threads
    sometimes abort a finished process (status -6)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _SaveWeights(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            torch.save({k: v.detach().clone() for k, v in pl_module.state_dict().items()}, self.out)


def _spawn_main(ws: str, plan: str, out: str) -> None:
    """Fit scenario ``base`` with ``strategy="ddp_spawn"`` on 2 CPU processes to each epoch count of
    ``plan`` in turn (``"2,4"``: 2 epochs, then resume to 4), then write rank 0's final weights."""
    quiet()
    ssc = sucrose.scenario(ws, "base")
    for epochs in map(int, plan.split(",")):
        pl.seed_everything(0, verbose=False)
        model = ssc.partial(DropoutModule, "model", lr=ssc["optim.lr"])()
        train_dl, _ = loaders(ssc)
        t = pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp_spawn",
            max_epochs=epochs,
            callbacks=[*ssc.callbacks(), _SaveWeights(out)],
            logger=ssc.logger(),
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=1,
        )
        t.fit(model, train_dl, ckpt_path=ssc.last_ckpt())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "ddp":
        _ddp_main(*sys.argv[2:5])
    elif len(sys.argv) == 5 and sys.argv[1] == "spawn":
        _spawn_main(*sys.argv[2:5])
    else:
        sys.exit("usage: python tests/lit_helpers.py ddp|spawn <workspace> <scenario|plan> <out>")
