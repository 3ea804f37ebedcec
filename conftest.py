"""Names every docstring example of the package may use (the doctest run's namespace).

* ``ws``: a fresh workspace folder whose ``config.yaml`` is the seed README's (``base`` with
  ``model.input_dim/hidden_dim/output_dim: 100`` and ``optim.lr: 0.01``; ``base/case1`` with
  ``model.input_dim: 200``);
* ``MyNet(input_dim, hidden_dim, output_dim)``: a tiny ``torch.nn.Module``;
* ``sucrose`` (the package) and ``torch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DOCTEST_CONFIG = """\
base:
  model.input_dim: 100
  model.hidden_dim: 100
  model.output_dim: 100
  optim.lr: 0.01

base/case1:
  model.input_dim: 200
"""


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any], tmp_path: Path) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    import torch

    import sucrose_lightning

    class MyNet(torch.nn.Module):
        def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
            super().__init__()
            self.input_dim = input_dim
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(input_dim, hidden_dim),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden_dim, output_dim),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(DOCTEST_CONFIG)
    doctest_namespace.update(ws=ws, MyNet=MyNet, sucrose=sucrose_lightning, torch=torch)
