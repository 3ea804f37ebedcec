"""Regenerate every shown ``sucrose`` output in the docs from a real workspace.

    python docs/gen_cli_output.py           # rewrite the output blocks in docs/*.md
    python docs/gen_cli_output.py --check   # exit 1 (with a diff) when a shown output is stale

A page marks its blocks with HTML comments, which the site does not show:

* ``<!-- cli: config.yaml -->`` before a ``yaml`` block: the workspace's ``config.yaml``;
* ``<!-- cli: output [STATE] -->`` before a ``console`` block: each ``$ sucrose ...`` line is run
  in a fresh copy of the workspace (the folder is the current one) and the lines up to the next
  ``$`` line are replaced by what it printed (stdout and stderr together). STATE prepares the
  copy: ``damaged`` (a truncated checkpoint and a killed save's temporary file) or
  ``no-matplotlib`` (the command runs as if matplotlib were not installed).

The workspace: ``base`` (4 epochs), ``base/wide`` (3) and ``base/wide/lr3`` (2) trained with the
plain loop, ``base/small`` 3 epochs with Lightning, and ``base/old`` trained and then removed from
``config.yaml``. Seeds, TensorBoard wall times and file times are fixed, times are shown in UTC,
and the workspace lives at a path of fixed length (Lightning records absolute paths), so the
output is the same on every run with the same torch and Lightning versions.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARK = re.compile(r"^<!-- cli: (?P<what>config\.yaml|output)(?: (?P<state>[\w-]+))? -->\n", re.M)
FIXED_TIME = 1795701780  # 2026-11-26 14:03 UTC: the mtime of every file in the workspace
WALL_TIME = 1795701784.0  # first TensorBoard wall time of the plain-loop runs
DEAD_PID = 4_194_305  # above Linux's largest pid_max: never a running process
STATES = ("damaged", "no-matplotlib")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _config_yaml() -> str:
    for page in _pages():
        text = page.read_text()
        for m in MARK.finditer(text):
            if m["what"] == "config.yaml":
                block = re.match(r"```yaml\n(.*?)```\n", text[m.end() :], re.S)
                if block is None:
                    raise SystemExit(f"{page}: '<!-- cli: config.yaml -->' must precede a ```yaml block")
                return block[1]
    raise SystemExit("no page has a '<!-- cli: config.yaml -->' block")


def _train_plain(ws: Path, name: str, epochs: int, lr: float) -> None:
    import math

    import torch

    import sucrose_lightning as sucrose

    with sucrose.scenario(ws, name) as ssc:
        model = torch.nn.Linear(ssc["model.input_dim"], ssc["model.hidden_dim"])
        writer = ssc.start_pytorch_tensorboard()
        for epoch in sucrose.epoch_range(epochs):
            for _ in range(5):
                sucrose.step()
                loss = math.exp(-lr * 30 * ssc.num_steps)
                writer.add_scalar(
                    "train/loss", loss, ssc.num_steps, walltime=WALL_TIME + ssc.num_steps / 1000
                )
            acc = 1 - 0.5 / (epoch + 1)
            writer.add_scalar("val/acc", acc, ssc.num_steps, walltime=WALL_TIME + ssc.num_steps / 1000)
            ssc.save_state_dict(1, model=model)
        writer.close()


def _train_lightning(ws: Path, name: str, epochs: int) -> None:
    import logging
    import warnings

    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import sucrose_lightning as sucrose

    class Net(pl.LightningModule):
        def __init__(self, input_dim: int, hidden_dim: int) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(input_dim, hidden_dim), torch.nn.Linear(hidden_dim, 1)
            )

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with sucrose.scenario(ws, name) as ssc:
        pl.seed_everything(0, verbose=False)
        x = torch.randn(20, ssc["model.input_dim"])
        loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
        trainer = pl.Trainer(
            max_epochs=epochs,
            callbacks=ssc.callbacks(warn_unused=False),
            logger=ssc.logger(),
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(ssc.partial(Net, "model")(), loader, ckpt_path=ssc.last_ckpt())


def build(ws: Path) -> None:
    """Build the documented workspace in ``ws`` (a new folder)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    config = _config_yaml()
    ws.mkdir(parents=True)
    (ws / "config.yaml").write_text(config + "\nbase/old:\n  model.hidden_dim: 8\n")
    for name, epochs, lr in (("base", 4, 0.01), ("base/wide", 3, 0.01), ("base/wide/lr3", 2, 0.001)):
        _train_plain(ws, name, epochs, lr)
    _train_plain(ws, "base/old", 1, 0.01)
    _train_lightning(ws, "base/small", 3)
    (ws / "config.yaml").write_text(config)  # base/old's domain is gone: an orphan now
    for folder, _, files in os.walk(ws):
        for f in files:
            os.utime(Path(folder) / f, (FIXED_TIME, FIXED_TIME))


def _prepare(copy: Path, state: str | None) -> None:
    if state == "damaged":
        folder = copy / "ckpts/base/wide"
        data = (folder / "base_wide_e3.pt").read_bytes()
        (folder / "base_wide_e4.pt").write_bytes(data[: len(data) // 3])  # a truncated copy
        (folder / f".base_wide_e5.pt.{DEAD_PID}.7731.tmp").write_bytes(data[:100])  # a killed save
        for f in folder.iterdir():
            os.utime(f, (FIXED_TIME, FIXED_TIME))
    elif state is not None and state != "no-matplotlib":
        raise SystemExit(f"unknown state {state!r}: use one of {', '.join(STATES)}")


def _run(command: str, cwd: Path, state: str | None) -> str:
    argv = shlex.split(command, comments=True)
    if argv[:1] != ["sucrose"]:
        raise SystemExit(f"only 'sucrose ...' commands can be shown, not {command!r}")
    prelude = "import sys\n"
    if state == "no-matplotlib":
        prelude += "sys.modules['matplotlib'] = None\n"
    code = prelude + f"from sucrose_lightning.cli import main\nsys.exit(main({argv[1:]!r}))\n"
    env = dict(os.environ, TZ="UTC", PYTHONPATH=str(ROOT), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return proc.stdout.rstrip("\n")


def _render_block(body: str, ws: Path, scratch: Path, state: str | None) -> str:
    commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    if not commands:
        raise SystemExit(f"an output block shows no '$ sucrose ...' line:\n{body}")
    copy = scratch / "ws"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ws, copy)
    _prepare(copy, state)
    out = []
    for command in commands:
        out.append(f"$ {command}")
        output = _run(command, copy, state)
        if output:
            out.append(output)
    return "\n".join(out) + "\n"


def regenerate(ws: Path, scratch: Path) -> dict[Path, tuple[str, str]]:
    """Every page's text before and after its output blocks are regenerated."""
    result = {}
    for page in _pages():
        text = page.read_text()
        pieces, pos = [], 0
        for m in MARK.finditer(text):
            if m["what"] != "output":
                continue
            block = re.match(r"```console\n(.*?)```\n", text[m.end() :], re.S)
            if block is None:
                raise SystemExit(f"{page}: '<!-- cli: output -->' must precede a ```console block")
            start, end = m.end() + block.start(1), m.end() + block.end(1)
            pieces += [text[pos:start], _render_block(block[1], ws, scratch, m["state"])]
            pos = end
        new = "".join([*pieces, text[pos:]])
        result[page] = (text, new)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a shown output is stale")
    args = parser.parse_args(argv)
    # a path of fixed length: Lightning records absolute paths, so their length is in the sizes
    with tempfile.TemporaryDirectory(prefix="sucrose-docs-", dir="/tmp") as tmp:
        ws = Path(tmp) / "ws"
        build(ws)
        pages = regenerate(ws, Path(tmp) / "scratch")
    stale = 0
    for page, (old, new) in pages.items():
        if old == new:
            continue
        stale += 1
        rel = page.relative_to(ROOT)
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    f"{rel} (shown)",
                    f"{rel} (real)",
                )
            )
        else:
            page.write_text(new)
            print(f"rewrote {rel}")
    if args.check and stale:
        print(f"\n{stale} page(s) show stale sucrose output; regenerate: python docs/gen_cli_output.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
