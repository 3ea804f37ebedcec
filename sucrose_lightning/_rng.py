"""Every global random state (Python, NumPy, torch CPU and CUDA): record and restore.

Stored as tensors, lists and ints only, so ``torch.load(weights_only=True)`` reads it back.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["restore_rng", "rng_state"]


def rng_state() -> dict[str, Any]:
    """Every global random state (Python, NumPy if installed, torch CPU, CUDA if available).

    Stored as tensors, lists and ints only, so ``torch.load(weights_only=True)`` reads it.
    """
    import torch

    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = [str(kind), keys.tolist(), int(pos), int(has_gauss), float(cached)]
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` recorded; missing parts are left as they are."""
    import torch

    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy state saved where numpy is installed
            pass
        else:
            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
