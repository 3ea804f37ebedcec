"""The plain-loop guide (docs/plain-loop.md) as a runnable script: a tiny regression model, plain PyTorch.

    python examples/plain_pytorch/train.py              # scenario base/case1, 3 epochs
    python examples/plain_pytorch/train.py base/case1   # again: resumes and trains 3 more

Checkpoints go to examples/plain_pytorch/ckpts/<scenario>/, TensorBoard logs to
examples/plain_pytorch/logs/<scenario>/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose

WORKSPACE = Path(__file__).resolve().parent


class ExampleModule(nn.Module):
    """A two-layer MLP whose sizes come from the `model.*` keys."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main(name: str = "base/case1") -> None:
    torch.manual_seed(0)
    ssc = sucrose.scenario(WORKSPACE, name)
    model = ssc.partial(ExampleModule, "model")()  # ExampleModule(input_dim=12, hidden_dim=16, output_dim=1)
    optim = torch.optim.SGD(model.parameters(), lr=ssc["optim.lr"])

    x = torch.randn(256, ssc["model.input_dim"])
    y = x.sum(dim=1, keepdim=True)
    loader = DataLoader(TensorDataset(x, y), batch_size=ssc["train.batch_size"], shuffle=True)

    # Load after building everything that draws random numbers: loading also restores the
    # random state recorded at save time, so a resumed run continues exactly.
    ssc.load_state_dict(model=model, optim=optim, loader_kwds={"weights_only": True})
    writer = ssc.start_pytorch_tensorboard()

    for epoch in sucrose.epoch_range(ssc["train.epochs"]):
        total = 0.0
        for xb, yb in loader:
            optim.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optim.step()
            sucrose.step()
            total += loss.item()
        writer.add_scalar("train/loss", total / len(loader), ssc.num_steps)
        path = ssc.save_state_dict(1, model=model, optim=optim)
        print(f"epoch {epoch + 1}: loss {total / len(loader):.4f}, step {ssc.num_steps}, saved {path.name}")
    writer.close()
    print(f"scenario {name}: {ssc.last_epoch} epochs done, checkpoints in {ssc.ckpts_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
