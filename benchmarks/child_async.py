"""P8 and P9 child: the training stall of a save, and the start-up of a resumed run.

One measurement per fresh process, one JSON line on stdout::

    python benchmarks/child_async.py stall --side ours_async|ours_sync|lightning_async \\
        --mb 1024 --steps 40 --every 8 --dir DIR
    python benchmarks/child_async.py make --side lightning|plain --mb 1024 --dir DIR
    python benchmarks/child_async.py resume --side ours|stock|ours_plain|torch_plain --mb 1024 --dir DIR

``stall``: ``Trainer.fit`` of a module holding ``--mb`` MB of buffers that every training step
changes in place (``+1``), with a checkpoint every ``--every`` steps: ours
(``ssc.callbacks(every_n_train_steps=..., async_save=True)``), ours synchronous, or a stock
``ModelCheckpoint`` with Lightning's ``AsyncCheckpointIO`` (wrapping ``TorchCheckpointIO``).
The stall of a save is the time the training thread spends inside the callback's
``_save_checkpoint`` (waiting for an earlier write included). Afterwards every file is checked:
its buffers must all equal its global step, i.e. the state at the save step; a state that
changed after the save (training goes on during the write) would show.

``make`` writes a ``--mb`` MB checkpoint (Lightning: by ``trainer.save_checkpoint`` after one
step; plain: ``ssc.save_state_dict``); ``resume`` times, in a fresh process, from the
``trainer.fit(..., ckpt_path=...)`` call to the first resumed training step (ours: our IO,
which memory-maps; stock: ``TorchCheckpointIO``), or the plain loop's ``ssc.load_state_dict``
against ``model.load_state_dict(torch.load(path)["model"])``. The page cache is warm (the file
was just written and is not dropped: that needs root).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

N_BUFFERS = 8
CONFIG = "base:\n  data.n: 4\n"


def _quiet() -> None:
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def _module(mb: int, trainable: bool) -> Any:
    import lightning.pytorch as pl
    from torch import nn

    per = int(mb * 2**20) // 4 // N_BUFFERS

    class Big(pl.LightningModule):
        """A tiny regressor plus ``mb`` MB of state: buffers (changed every step) or parameters."""

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1)
            for i in range(N_BUFFERS):
                if trainable:
                    self.register_parameter(f"big{i}", nn.Parameter(torch.full((per,), float(i))))
                else:
                    self.register_buffer(f"big{i}", torch.zeros(per))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if not trainable:
                with torch.no_grad():
                    for i in range(N_BUFFERS):
                        getattr(self, f"big{i}").add_(1.0)  # the state keeps changing after each save
            x, y = batch
            return nn.functional.mse_loss(self.lin(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.lin.parameters(), lr=0.01)

    return Big()


def _loader(steps: int) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 2, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2)


def _trainer(callbacks: list[Any], steps: int, epochs: int = 1, **extra: Any) -> Any:
    import lightning.pytorch as pl

    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **extra,
    )


def _scenario(folder: Path) -> Any:
    import sucrose_lightning as sucrose

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(CONFIG)
    return sucrose.scenario(folder, "base")


def stall(args: argparse.Namespace) -> dict[str, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    folder = Path(args.dir)
    extra: dict[str, Any] = {}
    if args.side == "lightning_async":
        from lightning.pytorch.plugins.io import AsyncCheckpointIO

        callback = ModelCheckpoint(dirpath=folder / "stock", every_n_train_steps=args.every, save_top_k=-1)
        extra["plugins"] = [AsyncCheckpointIO()]
        ckpt_dir = folder / "stock"
    else:
        ssc = _scenario(folder)
        callback = ssc.callbacks(every_n_train_steps=args.every, async_save=args.side == "ours_async")[0]
        ckpt_dir = ssc.ckpts_dir
    stalls: list[float] = []
    inner = callback._save_checkpoint

    def timed(trainer: Any, filepath: str) -> None:
        t0 = time.perf_counter()
        inner(trainer, filepath)
        stalls.append(time.perf_counter() - t0)

    callback._save_checkpoint = timed
    model = _module(args.mb, trainable=False)
    trainer = _trainer([callback], args.steps, **extra)
    t0 = time.perf_counter()
    trainer.fit(model, _loader(args.steps))
    fit_seconds = time.perf_counter() - t0
    files = sorted(ckpt_dir.glob("*.ckpt"))
    exact: list[bool] = []
    steps_seen = []
    for f in files:  # the state at the save step, nothing that training did after
        ckpt = torch.load(f, mmap=True, weights_only=True, map_location="cpu")
        step = ckpt["global_step"]
        steps_seen.append(step)
        bufs = [ckpt["state_dict"][f"big{i}"] for i in range(N_BUFFERS)]
        exact.append(all(bool((b == float(step)).all()) for b in bufs))
        del ckpt, bufs
    size = files[-1].stat().st_size if files else 0
    saver = getattr(trainer.strategy.checkpoint_io, "saver", None)  # ours_async: waits for the previous write
    return {
        "side": args.side,
        "stalls": stalls,
        "waits": list(saver.waits) if saver is not None else [],
        "step_seconds": fit_seconds / args.steps,
        "fit_seconds": fit_seconds,
        "files": len(files),
        "steps": steps_seen,
        "exact": all(exact) and len(exact) == args.steps // args.every,
        "file_size": size,
        "temps": [p.name for p in ckpt_dir.glob(".*.tmp")],
    }


def make(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.dir)
    if args.side == "plain":
        ssc = _scenario(folder)
        model = _module(args.mb, trainable=True)
        path = ssc.save_state_dict(1, model=model)
        ssc.close()
    else:
        model = _module(args.mb, trainable=True)
        trainer = _trainer([], 1, enable_checkpointing=False)
        trainer.fit(model, _loader(1))
        path = folder / "resume.ckpt"
        trainer.save_checkpoint(path)  # Lightning's own writer: the same file for both sides
    import os

    os.sync()
    return {"path": str(path), "size": Path(str(path)).stat().st_size}


def resume(args: argparse.Namespace) -> dict[str, Any]:
    import lightning.pytorch as pl

    folder = Path(args.dir)
    model = _module(args.mb, trainable=True)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # so that a load that did nothing cannot pass
    if args.side in ("ours_plain", "torch_plain"):
        t0 = time.perf_counter()
        if args.side == "ours_plain":
            ssc = _scenario(folder)
            ssc.load_state_dict(model=model)
        else:
            path = next((folder / "ckpts" / "base").glob("*.pt"))
            model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu")["model"])
        seconds = time.perf_counter() - t0
    else:
        from lightning.pytorch.callbacks import ModelCheckpoint

        first: list[float] = []

        class FirstStep(pl.Callback):
            def on_train_batch_start(self, *a: Any) -> None:
                if not first:
                    first.append(time.perf_counter())

        path = folder / "resume.ckpt"
        if args.side == "ours":
            ssc = _scenario(folder / "ws")
            callbacks = [*ssc.callbacks(), FirstStep()]
        else:
            callbacks = [ModelCheckpoint(dirpath=folder / "stock"), FirstStep()]
        trainer = _trainer(callbacks, 2, epochs=2)
        t0 = time.perf_counter()
        trainer.fit(model, _loader(2), ckpt_path=str(path))
        seconds = first[0] - t0
    big = [getattr(model, f"big{i}") for i in range(N_BUFFERS)]
    loaded = all(bool((b == float(i)).all()) for i, b in enumerate(big))
    return {"side": args.side, "seconds": seconds, "loaded": loaded}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["stall", "make", "resume"])
    parser.add_argument("--side", required=True)
    parser.add_argument("--mb", type=int, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    _quiet()
    out = {"stall": stall, "make": make, "resume": resume}[args.what](args)
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
