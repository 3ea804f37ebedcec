"""P1 child: the CPU time of our callback and logger hooks against stock ones, in the same fit.

One ``Trainer.fit`` of a tiny model holds both sides side by side: ours
(``SucroseCheckpoint`` + ``SucroseLogger``, from ``ssc.callbacks()`` / ``ssc.logger()``) and
stock (``ModelCheckpoint(save_top_k=-1)`` + ``TensorBoardLogger``), each saving one checkpoint
per epoch and logging the same scalars. Every hook method of the four objects is wrapped to add
the training thread's CPU time (``time.thread_time``) spent inside it to its side; every
``--block`` steps the sums and the thread's total CPU time are recorded, so the two sides are
interleaved at every step and measured over the same steps. Stock saves go through Lightning's
``TorchCheckpointIO`` (swapped in for the duration of the stock callback's save), ours through
ours. Prints one JSON line: per block, ours, stock and total CPU seconds.

    python benchmarks/child_hooks.py --steps 20000 --epochs 10 --block 200 --dir DIR [--stock-first]

Which side's hooks Lightning calls first can matter (caches); the parent alternates the order
between runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

LOGGER_METHODS = ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize", "after_save_checkpoint")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--stock-first", action="store_true", help="call the stock side's hooks first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import logging

    import lightning.pytorch as pl
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import sucrose_lightning as sucrose

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("base:\n  model.dim: 16\n")
    ssc = sucrose.scenario(folder, "base")
    acc = {"ours": 0.0, "stock": 0.0}
    by_hook: dict[str, float] = {}
    hooks = [n for n in dir(Callback) if n.startswith("on_")]
    hooks += ["setup", "teardown", "state_dict", "load_state_dict"]

    def wrap(obj: Any, names: list[str] | tuple[str, ...], side: str) -> None:
        for n in names:
            fn = getattr(obj, n, None)
            if not callable(fn):
                continue

            @functools.wraps(fn)
            def timed(*a: Any, _fn: Any = fn, **k: Any) -> Any:
                t0 = time.thread_time()
                try:
                    return _fn(*a, **k)
                finally:
                    spent = time.thread_time() - t0
                    acc[side] += spent
                    key = f"{side} {type(obj).__name__}.{_fn.__name__}"
                    by_hook[key] = by_hook.get(key, 0.0) + spent

            setattr(obj, n, timed)

    ours_cb = ssc.callbacks()[0]
    ours_log = ssc.logger()
    stock_cb = ModelCheckpoint(dirpath=folder / "stock", save_top_k=-1)
    stock_log = TensorBoardLogger(folder / "stock_logs", name="base")
    inner_save = stock_cb._save_checkpoint

    def stock_save(trainer: Any, filepath: str) -> None:  # stock saves through Lightning's own IO
        ours_io = trainer.strategy.checkpoint_io
        trainer.strategy.checkpoint_io = TorchCheckpointIO()
        try:
            inner_save(trainer, filepath)
        finally:
            trainer.strategy.checkpoint_io = ours_io

    stock_cb._save_checkpoint = stock_save
    wrap(ours_cb, hooks, "ours")
    wrap(stock_cb, hooks, "stock")
    wrap(ours_log, LOGGER_METHODS, "ours")
    wrap(stock_log, LOGGER_METHODS, "stock")
    blocks: list[list[float]] = []
    mark = {"cpu": 0.0, "ours": 0.0, "stock": 0.0}

    class Blocks(Callback):
        def on_train_start(self, *a: Any) -> None:
            mark.update(cpu=time.thread_time(), **acc)

        def on_train_batch_end(self, trainer: Any, *a: Any) -> None:
            if trainer.global_step % args.block == 0:
                now = time.thread_time()
                blocks.append([acc["ours"] - mark["ours"], acc["stock"] - mark["stock"], now - mark["cpu"]])
                mark.update(cpu=now, **acc)

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(16, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.mse_loss(self.lin(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    per_epoch = args.steps // args.epochs
    g = torch.Generator().manual_seed(0)
    x = torch.randn(per_epoch * 8, 16, generator=g)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=True)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        callbacks=[stock_cb, ours_cb, Blocks()] if args.stock_first else [ours_cb, stock_cb, Blocks()],
        logger=[stock_log, ours_log] if args.stock_first else [ours_log, stock_log],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    pl.seed_everything(0, verbose=False)
    trainer.fit(Tiny(), loader)
    ours_files = sorted(p.name for p in ssc.ckpts_dir.glob("*.ckpt"))
    stock_files = sorted(p.name for p in (folder / "stock").glob("*.ckpt"))
    print(
        json.dumps(
            {
                "blocks": blocks,
                "by_hook": dict(sorted(by_hook.items(), key=lambda kv: -kv[1])[:12]),
                "steps": trainer.global_step,
                "ours_files": len(ours_files),
                "stock_files": len(stock_files),
                "ours_events": len(list(ssc.logs_dir.rglob("events.out.tfevents.*"))),
                "stock_events": len(list((folder / "stock_logs").rglob("events.out.tfevents.*"))),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
