"""The plain-loop script ``tests/test_sweeps.py`` runs under ``sucrose run``, one per scenario.

It trains the scenario named by ``SUCROSE_SCENARIO`` in ``SUCROSE_WORKSPACE`` to
``train.epochs`` epochs, resuming from the newest checkpoint (with every random state), prints
``START <epochs loaded> <pid>``, ``EPOCH <n>`` after each saved epoch and ``DONE``, and writes
the final weights to ``<workspace>/weights/<scenario with / as _>.pt``.

A scenario listed in ``SWEEP_HOLD`` (names separated by ``:``, which no domain name holds)
stops after its first saved epoch the first time it runs: it writes
``<workspace>/held/<stem>`` and waits for a signal (``signal.pause``), so a test can stop the
sweep at a known point without sleeping. It does not handle SIGTERM: SIGTERM's default ends
it, and the next run resumes from the epoch it saved.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose

CONFIG = """\
# a sweep of six: three learning rates times two widths
base:
  model.hidden: 8
  optim.lr: 0.05
  data.size: 32
  data.batch: 8
  train.epochs: 3

base/lr:
  .grid:
    optim.lr: [0.1, 0.05, 0.01]
    model.hidden: [4, 8]
"""


def train(workspace: str, name: str, hold: bool = False) -> dict[str, torch.Tensor]:
    """Train scenario ``name`` to ``train.epochs``; returns (and saves) the final weights."""
    torch.set_num_threads(1)
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    ssc = sucrose.scenario(workspace, name)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, ssc["model.hidden"]), torch.nn.Tanh(), torch.nn.Linear(ssc["model.hidden"], 1)
    )
    optim = torch.optim.SGD(model.parameters(), lr=ssc["optim.lr"], momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(ssc["data.size"], 4, generator=gen)
    y = x.sum(dim=1, keepdim=True).sin()
    loader = DataLoader(TensorDataset(x, y), batch_size=ssc["data.batch"], shuffle=True)
    ssc.load_state_dict(model=model, optim=optim)
    print(f"START {ssc.last_epoch} {os.getpid()}", flush=True)
    held = Path(workspace) / "held" / name.replace("/", "_")
    for epoch in sucrose.epoch_range(ssc["train.epochs"] - ssc.last_epoch):
        for xb, yb in loader:
            noise = torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(xb.shape))).float()
            loss = (0.5 + random.random()) * torch.nn.functional.mse_loss(model(xb + noise), yb)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sucrose.step()
        ssc.save_state_dict(1, model=model, optim=optim)
        print(f"EPOCH {epoch + 1}", flush=True)
        if hold and not held.exists():
            held.parent.mkdir(exist_ok=True)
            part = held.parent / (held.name + ".part")
            part.write_text(str(os.getpid()))
            os.replace(part, held)
            while True:  # until a signal ends the process
                signal.pause()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = Path(workspace) / "weights" / (name.replace("/", "_") + ".pt")
    out.parent.mkdir(exist_ok=True)
    torch.save(weights, out)
    print("DONE", flush=True)
    ssc.close()
    return weights


def main() -> int:
    name = os.environ["SUCROSE_SCENARIO"]
    hold = name in os.environ.get("SWEEP_HOLD", "").split(":")
    train(os.environ["SUCROSE_WORKSPACE"], name, hold=hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
