"""Child processes of the preemption tests: a small fit that a test stops with a real signal.

:func:`child_fit` runs in a process forked from the preloaded forkserver (see
``lit_helpers.forkserver``). It sets the environment a SLURM job sees, fits with the scenario's
callbacks plus :class:`~sucrose_lightning.preemption.SucrosePreemption`, and at global step
``hold_at`` writes a marker file, then waits (inside that batch) until the stop signal the test
sends has been noted, so the stop lands at a known batch boundary.

Run as a script it is one node of the 2-node simulation::

    python tests/preempt_child.py node <json arguments>
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import lit_helpers as H
import torch
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose
from sucrose_lightning.preemption import SucrosePreemption

CONFIG = H.CONFIG.replace("data.n: 32", "data.n: 64")  # 8 batches of 8 per epoch
BATCHES = 8
SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "train",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NODEID": "0",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODELIST": "127.0.0.1",
}


class HoldAt(pl.Callback):
    """At global step ``step``: write ``marker``, then wait in that batch until a stop signal is noted."""

    def __init__(self, step: int, marker: str, preemption: SucrosePreemption) -> None:
        self.step, self.marker, self.preemption = step, marker, preemption

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step != self.step:
            return
        tmp = self.marker + ".tmp"
        Path(tmp).write_text(f"{os.getpid()} {trainer.current_epoch} {trainer.global_step}\n")
        os.replace(tmp, self.marker)
        woke = threading.Event()
        deadline = time.monotonic() + 120
        while self.preemption.received is None:  # the handler runs between these waits
            if time.monotonic() > deadline:
                raise RuntimeError("no stop signal arrived within 120 s")
            woke.wait(0.002)


def train_loader(ssc: Any, stateful: bool) -> DataLoader:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(ssc["data.n"], ssc["model.in_dim"], generator=g)
    y = x.sum(dim=1, keepdim=True)
    ds = TensorDataset(x, y)
    if stateful:
        from torchdata.stateful_dataloader import StatefulDataLoader

        return StatefulDataLoader(ds, batch_size=ssc["data.batch_size"], shuffle=True)
    return DataLoader(ds, batch_size=ssc["data.batch_size"], shuffle=True)


def child_fit(
    ws: str,
    name: str,
    max_epochs: int,
    out: str,
    env: dict[str, str] | None = None,
    hold_at: int | None = None,
    marker: str | None = None,
    stateful: bool = False,
    **trainer_options: Any,
) -> None:
    """Fit ``name`` to ``max_epochs`` from ``ssc.last_ckpt()``; report to ``out`` (JSON) and ``out.pt``."""
    os.environ.update(env or {})
    if os.environ.get("SUCROSE_COUNT_WRITES"):
        _count_writes(os.environ["SUCROSE_COUNT_WRITES"])
    H.quiet()
    torch.set_num_threads(1)
    ssc = sucrose.scenario(ws, name)
    last = ssc.last_ckpt()
    report: dict[str, Any] = {"resumed_from": last, "pid": os.getpid()}
    pl.seed_everything(0, verbose=False)
    model = H.make_model(ssc)
    callbacks = ssc.callbacks()  # the checkpoints and the scenario's SucrosePreemption
    preemption = next(c for c in callbacks if isinstance(c, SucrosePreemption))
    if hold_at is not None:  # before the preemption callback: it acts at the end of this very batch
        callbacks.insert(0, HoldAt(hold_at, str(marker), preemption))
    options = {"accelerator": "cpu", "devices": 1, **trainer_options}
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(Path(ws) / "lightning_root"),
        **options,
    )
    report["environment"] = type(trainer._accelerator_connector.cluster_environment).__name__
    report["rank"] = trainer.global_rank
    Path(out).write_text(json.dumps(report))
    trainer.fit(model, train_loader(ssc, stateful), ckpt_path=last)
    report.update(step=trainer.global_step, epoch=trainer.current_epoch, last_after=ssc.last_ckpt())
    Path(out).write_text(json.dumps(report))
    torch.save(model.state_dict(), out + ".pt")


def _count_writes(journal: str) -> None:
    """Append the path of every checkpoint this process writes to ``journal``."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    from sucrose_lightning import _atomic

    real_save, real_io = _atomic.atomic_save, TorchCheckpointIO.save_checkpoint

    def note(path: Any) -> None:
        with open(journal, "a") as f:
            f.write(f"{path}\n")

    def atomic_save(obj: Any, final: Path) -> None:
        note(final)
        real_save(obj, final)

    def io_save(self: Any, checkpoint: Any, path: Any, storage_options: Any = None) -> None:
        note(path)
        real_io(self, checkpoint, path, storage_options)

    _atomic.atomic_save = atomic_save  # type: ignore[assignment]
    TorchCheckpointIO.save_checkpoint = io_save  # type: ignore[method-assign]


def fake_scontrol(folder: Path) -> tuple[Path, Path]:
    """A ``scontrol`` script in ``folder`` that appends its arguments to ``folder/scontrol.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "scontrol.log"
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    script.chmod(0o755)
    return script, log


if __name__ == "__main__" and sys.argv[1:2] == ["node"]:
    kwargs = json.loads(sys.argv[2])
    child_fit(**kwargs)
