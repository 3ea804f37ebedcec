"""Shared fixtures: a workspace folder with a config.yaml written from text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SEED_CONFIG = """
base:
  model.input_dim: 100
  model.hidden_dim: 100
  model.output_dim: 100

base/case1:
  model.input_dim: 200
"""


@pytest.fixture
def make_ws(tmp_path: Path) -> Callable[[str], Path]:
    """``make_ws(yaml_text)`` writes ``<tmp>/ws/config.yaml`` and returns the workspace."""

    def make(text: str = SEED_CONFIG, name: str = "ws") -> Path:
        ws = tmp_path / name
        ws.mkdir(parents=True, exist_ok=True)
        (ws / "config.yaml").write_text(textwrap.dedent(text))
        return ws

    return make


@pytest.fixture
def seed_ws(make_ws: Callable[[str], Path]) -> Path:
    """The seed README's example workspace."""
    return make_ws(SEED_CONFIG)
