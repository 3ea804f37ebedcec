"""P1 child: wall time of ``Trainer.fit`` on a tiny model, three ways, interleaved in one process.

    python benchmarks/child_train.py --dir DIR --epochs 10 --steps 200 --runs 5

- ``ours``:    ``Trainer(callbacks=ssc.callbacks(), logger=ssc.logger())`` (as the README says)
- ``stock``:   ``Trainer(callbacks=[ModelCheckpoint(dirpath=..., save_top_k=-1)],
               logger=TensorBoardLogger(...))``: the same work (one checkpoint per epoch, all
               kept, TensorBoard scalars and hyperparameters)
- ``neither``: ``Trainer(enable_checkpointing=False, logger=False)``

One warm-up round is not counted; then the variants run in rotating order A B C, B C A, ...
The timed part is everything a user's script does for the run: (for ``ours``) starting the
scenario, building the callbacks, logger and Trainer, and ``fit``. Before the timings count,
each run is checked: the number of steps, identical final weights across the three variants,
one checkpoint file per epoch whose weights equal the model's at that point (the last one is
loaded back and compared), and TensorBoard event files for the two that log. Prints one JSON
line; ``--profile`` adds the top functions of one extra profiled fit per variant.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import shutil
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from torch import nn  # noqa: E402

import sucrose_lightning as sucrose  # noqa: E402

for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(name).setLevel(logging.ERROR)

CONFIG = "base:\n  model.dim: 16\n  model.lr: 0.01\n"


class TinyModule(L.LightningModule):
    def __init__(self, dim: int = 16, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(dim, 1)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _trainer_kwargs(epochs: int, root: Path) -> dict:
    return {
        "max_epochs": epochs,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(root),
    }


def _events(folder: Path) -> list[Path]:
    return list(folder.rglob("events.out.tfevents.*")) if folder.exists() else []


def _breakdown_targets() -> list[tuple[object, str, str]]:
    """(owner, attribute, label) of the functions whose time differs between ours and stock."""
    from lightning.pytorch.callbacks import ModelCheckpoint as MC

    from sucrose_lightning import _atomic, _rng

    out: list[tuple[object, str, str]] = [
        (TensorBoardLogger, "save", "TensorBoardLogger.save"),
        (TensorBoardLogger, "log_metrics", "TensorBoardLogger.log_metrics"),
        (TensorBoardLogger, "log_hyperparams", "TensorBoardLogger.log_hyperparams"),
        (MC, "_save_checkpoint", "ModelCheckpoint._save_checkpoint"),
        (MC, "setup", "ModelCheckpoint.setup"),
        (L.Trainer, "save_checkpoint", "Trainer.save_checkpoint"),
        (_atomic, "atomic_save", "_atomic.atomic_save"),
        (_rng, "rng_state", "_rng.rng_state"),
        (MC, "on_train_batch_end", "ModelCheckpoint.on_train_batch_end"),
        (MC, "on_train_epoch_end", "ModelCheckpoint.on_train_epoch_end"),
        (L.Trainer, "__init__", "Trainer.__init__"),
        (L.Trainer, "fit", "Trainer.fit"),
        (L.Trainer, "_run_stage", "Trainer._run_stage"),
        (sucrose, "scenario", "sucrose.scenario"),
        (sucrose.SucroseScenario, "partial", "SucroseScenario.partial"),
        (sucrose.SucroseScenario, "callbacks", "SucroseScenario.callbacks"),
        (sucrose.SucroseScenario, "logger", "SucroseScenario.logger"),
        (os, "fsync", "os.fsync"),
        (os, "replace", "os.replace"),
    ]
    try:
        from sucrose_lightning import lightning as sl
    except ImportError:
        return out
    for cls_name, attrs in (
        ("SucroseLogger", ("save", "log_hyperparams")),
        (
            "SucroseCheckpoint",
            (
                "_save_checkpoint",
                "setup",
                "on_train_batch_end",
                "on_train_epoch_end",
                "on_validation_end",
                "teardown",
                "on_fit_end",
                "_make_room",
                "_prune",
                "on_save_checkpoint",
            ),
        ),
    ):
        cls = getattr(sl, cls_name, None)
        for attr in attrs:
            if cls is not None and attr in vars(cls):
                out.append((cls, attr, f"{cls_name}.{attr}"))
    for fn in ("save_hparams_to_yaml",):
        from lightning.pytorch.core import saving

        out.append((saving, fn, f"saving.{fn}"))
    return out


def _wrap(owner: object, attr: str, label: str, acc: dict[str, list[float]]):  # type: ignore[no-untyped-def]
    own = not isinstance(owner, type) or attr in owner.__dict__
    original = owner.__dict__[attr] if isinstance(owner, type) and own else getattr(owner, attr)
    func = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original

    def timed(*a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return func(*a, **k)
        finally:
            slot = acc.setdefault(label, [0.0, 0])
            slot[0] += time.perf_counter() - t0
            slot[1] += 1

    for keep in ("__name__", "__qualname__", "__doc__", "__wrapped__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(timed, keep, getattr(func, keep))
    setattr(owner, attr, timed)

    def restore() -> None:
        if own:
            setattr(owner, attr, original)
        else:
            delattr(owner, attr)  # it was inherited

    return restore


def _sucrose_first(stats: pstats.Stats, entries: list) -> list:
    """Profile entries of sucrose_lightning's own functions (by cumulative time), then the rest."""
    mine = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "sucrose_lightning" in file:
            mine.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
    mine.sort(key=lambda e: -e[1])
    return mine + entries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200, help="batches per epoch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variants", default="ours,stock,neither")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)
    base = Path(args.dir)
    batch = 8
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(args.steps * batch, 16, generator=gen)
    ys = torch.randn(args.steps * batch, 1, generator=gen)
    dataset = torch.utils.data.TensorDataset(xs, ys)
    expected_steps = args.epochs * args.steps
    counter = [0]

    def fresh(kind: str) -> Path:
        counter[0] += 1
        root = base / f"{kind}{counter[0]}"
        root.mkdir(parents=True)
        return root

    def run(kind: str) -> tuple[float, dict]:
        root = fresh(kind)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch)
        torch.manual_seed(0)
        if kind == "ours":
            (root / "config.yaml").write_text(CONFIG)
            t0 = time.perf_counter()
            ssc = sucrose.scenario(root, "base")
            model = ssc.partial(TinyModule, "model")()
            trainer = L.Trainer(
                callbacks=ssc.callbacks(), logger=ssc.logger(), **_trainer_kwargs(args.epochs, root)
            )
            trainer.fit(model, loader)
            seconds = time.perf_counter() - t0
            ckpt_dir = ssc.ckpts_dir
            stamped = [c.epochs for c in ssc.ckpts()]
            last = ssc.last_ckpt()
            logs = ssc.logs_dir
            ssc.close()
        elif kind == "stock":
            t0 = time.perf_counter()
            model = TinyModule(dim=16, lr=0.01)
            trainer = L.Trainer(
                callbacks=[ModelCheckpoint(dirpath=root / "ckpts", save_top_k=-1)],
                logger=TensorBoardLogger(root / "logs"),
                **_trainer_kwargs(args.epochs, root),
            )
            trainer.fit(model, loader)
            seconds = time.perf_counter() - t0
            ckpt_dir = root / "ckpts"
            files = sorted(ckpt_dir.glob("*.ckpt"), key=os.path.getmtime)
            stamped = list(range(1, len(files) + 1))
            last = str(files[-1]) if files else None
            logs = root / "logs"
        else:
            t0 = time.perf_counter()
            model = TinyModule(dim=16, lr=0.01)
            trainer = L.Trainer(
                enable_checkpointing=False, logger=False, **_trainer_kwargs(args.epochs, root)
            )
            trainer.fit(model, loader)
            seconds = time.perf_counter() - t0
            ckpt_dir = root / "ckpts"
            stamped, last, logs = [], None, root / "logs"

        # ---- the same, correct work
        info: dict = {"steps": trainer.global_step}
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        info["weights"] = weights
        files_on_disk = sorted(p.name for p in root.rglob("*.ckpt"))
        info["ckpt_files"] = files_on_disk
        if kind == "neither":
            info["ok_files"] = not files_on_disk
            info["events"] = len(_events(root))
        else:
            info["ok_files"] = (
                stamped == list(range(1, args.epochs + 1)) and len(files_on_disk) == args.epochs
            )
            info["events"] = len(_events(Path(logs)))
            if last is None:
                info["ok_last"] = False
            else:
                data = torch.load(last, weights_only=False, map_location="cpu")
                info["ok_last"] = data.get("global_step") == expected_steps and all(
                    torch.equal(data["state_dict"][k], v) for k, v in weights.items()
                )
            info["ckpt_dir"] = str(ckpt_dir)
        shutil.rmtree(root, ignore_errors=True)
        return seconds, info

    variants = [v for v in args.variants.split(",") if v]
    times: dict[str, list[float]] = {v: [] for v in variants}
    problems: list[str] = []
    rounds = args.runs + 1
    for r in range(rounds):
        shift = r % len(variants)
        order = variants[shift:] + variants[:shift]
        finals = {}
        for kind in order:
            seconds, info = run(kind)
            finals[kind] = info["weights"]
            if info["steps"] != expected_steps:
                problems.append(f"{kind}: {info['steps']} steps, expected {expected_steps}")
            if not info["ok_files"]:
                problems.append(
                    f"{kind}: checkpoint files {info['ckpt_files']} (expected one per epoch: {args.epochs})"
                )
            if kind != "neither":
                if not info.get("ok_last"):
                    problems.append(f"{kind}: the last checkpoint does not hold the final weights and step")
                if not info["events"]:
                    problems.append(f"{kind}: no TensorBoard event file written")
            elif info["events"]:
                problems.append("neither: wrote TensorBoard events although logger=False")
            if r > 0:
                times[kind].append(seconds)
        first = finals[variants[0]]
        for kind in variants[1:]:
            if not all(torch.equal(first[k], finals[kind][k]) for k in first):
                problems.append(f"final weights of {kind} differ from {variants[0]}: not the same training")
        if problems:
            break

    profiles: dict[str, list] = {}
    breakdown: dict[str, dict[str, list[float]]] = {}
    if args.profile and not problems:
        # exact inclusive time and call count of the functions where the two sides differ
        targets = _breakdown_targets()
        for kind in variants:
            acc: dict[str, list[float]] = {}
            undo = [_wrap(owner, attr, label, acc) for owner, attr, label in targets]
            try:
                seconds, _ = run(kind)
                acc["total (timed region)"] = [seconds, 1]
            finally:
                for restore in reversed(undo):
                    restore()
            breakdown[kind] = {k: [round(v[0], 4), int(v[1])] for k, v in acc.items()}
        for kind in variants:
            prof = cProfile.Profile()
            prof.enable()
            run(kind)
            prof.disable()
            stream = io.StringIO()
            stats = pstats.Stats(prof, stream=stream)
            entries = []
            for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
                entries.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
            entries.sort(reverse=True)
            entries = _sucrose_first(stats, entries)
            profiles[kind] = [
                {"tottime": round(tt, 4), "cumtime": round(ct, 4), "calls": nc, "func": f}
                for tt, ct, nc, f in entries[:25]
            ]
            with contextlib.suppress(Exception):
                stats.sort_stats("cumulative")

    print(
        json.dumps(
            {
                "times": times,
                "problems": problems,
                "steps": expected_steps,
                "profiles": profiles,
                "breakdown": breakdown,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
