"""A tiny, seeded plain-PyTorch training run used by ``tests/test_crash_plain.py``.

It follows the README's plain loop exactly: ``sucrose.scenario`` ->
``ssc.load_state_dict`` -> ``for epoch in sucrose.epoch_range(n)`` -> ``sucrose.step()``
-> ``ssc.save_state_dict(1, ...)``. All three random generators (Python ``random``,
NumPy, torch) influence the weights, through a shuffled ``DataLoader``, dropout,
NumPy input noise and a Python-random loss weight, so a resume that does not restore
every random state ends with different weights.

Run as a script (a fresh interpreter)::

    python plain_train_script.py WORKSPACE TOTAL_EPOCHS [--max-epochs K] [--no-load-rng]
                                 [--log FILE] [--hold MARKER]

or call :func:`train` / :func:`hold` in a forked child (the kill test does that, to
avoid paying torch's import time on each of its many restarts).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy as np
import torch
import torch._dynamo  # (torch.optim imports it on first use: ~1.5 s; a forkserver preloads it here)
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose

SCENARIO = "base/tiny"
CONFIG = """\
base:
  model.hidden: 32
  model.dropout: 0.2
  optim.lr: 0.05
  data.size: 96
  data.batch: 16
base/tiny:
"""


def write_config(workspace: str) -> None:
    os.makedirs(workspace, exist_ok=True)
    with open(os.path.join(workspace, "config.yaml"), "w") as f:
        f.write(CONFIG)


class Net(torch.nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(8, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _log(log: str | None, line: str) -> None:
    if log is None:
        print(line, flush=True)
        return
    # O_APPEND + one write per line: a SIGKILL never leaves half a line behind
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def train(
    workspace: str,
    total_epochs: int,
    *,
    max_epochs: int | None = None,
    load_rng: bool = True,
    log: str | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``base/tiny`` of ``workspace`` up to ``total_epochs`` (or ``max_epochs`` more).

    Logs ``START <epochs loaded> <steps> <pid>``, ``EPOCH <n> <steps> <monotonic time>`` after each
    saved epoch and
    ``DONE <epochs>``. Returns the final weights.
    """
    torch.set_num_threads(1)
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)

    ssc = sucrose.scenario(workspace, SCENARIO)
    model = ssc.partial(Net, "model")()
    optim = torch.optim.SGD(model.parameters(), lr=ssc["optim.lr"], momentum=0.9)
    gen = torch.Generator().manual_seed(0)  # the data itself is fixed
    x = torch.randn(ssc["data.size"], 8, generator=gen)
    y = x.sum(dim=1, keepdim=True).sin()
    loader = DataLoader(TensorDataset(x, y), batch_size=ssc["data.batch"], shuffle=True)

    ssc.load_state_dict(model=model, optim=optim, load_rng=load_rng)
    start = ssc.last_epoch
    _log(log, f"START {start} {ssc.num_steps} {os.getpid()}")
    todo = total_epochs - start
    if max_epochs is not None:
        todo = min(todo, max_epochs)
    for epoch in sucrose.epoch_range(max(todo, 0)):
        model.train()
        for xb, yb in loader:
            noise = torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(xb.shape))).float()
            weight = 0.5 + random.random()
            loss = weight * torch.nn.functional.mse_loss(model(xb + noise), yb)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sucrose.step()
        ssc.save_state_dict(1, model=model, optim=optim)
        _log(log, f"EPOCH {epoch + 1} {ssc.num_steps} {time.monotonic():.6f}")
    _log(log, f"DONE {ssc.last_epoch} {ssc.num_steps}")
    ssc.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def hold(workspace: str, marker: str) -> None:
    """Start training ``base/tiny`` (take its lock), write ``marker``, then wait to be killed."""
    ssc = sucrose.scenario(workspace, SCENARIO)
    sucrose.epoch_range(1)
    with open(marker + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".part", marker)
    while True:  # until SIGKILLed (or a stop file appears)
        if os.path.exists(marker + ".stop"):
            ssc.close()
            return
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace")
    parser.add_argument("total", type=int, nargs="?", default=4)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--no-load-rng", action="store_true")
    parser.add_argument("--log", default=None)
    parser.add_argument("--hold", default=None, metavar="MARKER")
    parser.add_argument("--out", default=None, help="write the final weights here (torch.save)")
    args = parser.parse_args(argv)
    if args.hold:
        hold(args.workspace, args.hold)
        return 0
    weights = train(
        args.workspace,
        args.total,
        max_epochs=args.max_epochs,
        load_rng=not args.no_load_rng,
        log=args.log,
    )
    if args.out:
        torch.save(weights, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
