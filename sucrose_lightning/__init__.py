"""sucrose_lightning: a home for PyTorch and Lightning experiments.

One ``config.yaml`` of named, inheriting domains; for each scenario its own
checkpoint and log folders, automatic resume, TensorBoard logging and
hyperparameters.

Examples:
    The plain PyTorch loop, in a workspace ``ws`` holding the seed's ``config.yaml``:

    >>> import sucrose_lightning as sucrose
    >>> ssc = sucrose.scenario(ws, "base/case1")
    >>> model = ssc.partial(MyNet, "model")()
    >>> optim = torch.optim.SGD(model.parameters(), lr=ssc["optim.lr"])
    >>> ssc.load_state_dict(model=model, optim=optim)  # nothing saved yet: starts fresh
    {}
    >>> for epoch in sucrose.epoch_range(2):
    ...     optim.step()
    ...     _ = sucrose.step()
    ...     _ = ssc.save_state_dict(1, model=model, optim=optim)
    >>> [(c.epochs, c.path.rsplit("/", 1)[-1]) for c in ssc.ckpts(plain_loop=True)]
    [(1, 'base_case1_e1.pt'), (2, 'base_case1_e2.pt')]
    >>> ssc.close()
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from .config import Config, load_config
from .errors import (
    CheckpointError,
    ConfigError,
    DamagedCheckpointError,
    DomainNotFoundError,
    LockError,
    MissingKeyError,
    SucroseConfigWarning,
    SucroseError,
    SucroseWarning,
    UnsafeCheckpointError,
)
from .layout import CkptFile
from .newdomain import new_domain
from .scenario import SucroseScenario, current, set_current
from .store import CheckpointStore

if TYPE_CHECKING:  # pragma: no cover
    from .lightning import SucroseCheckpoint, SucroseLogger
    from .lightning_cli import SucroseCLI

__version__ = "0.1.0"

logger = logging.getLogger("sucrose_lightning")
"""The package's logger; ``sucrose.logger.setLevel("DEBUG")`` shows what it does. It never prints
on its own: attach a handler (or ``logging.basicConfig()``) to see its messages."""
logger.addHandler(logging.NullHandler())

__all__ = [
    "CheckpointError",
    "CheckpointStore",
    "CkptFile",
    "Config",
    "ConfigError",
    "DamagedCheckpointError",
    "DomainNotFoundError",
    "LockError",
    "MissingKeyError",
    "SucroseCLI",
    "SucroseCheckpoint",
    "SucroseConfigWarning",
    "SucroseError",
    "SucroseLogger",
    "SucroseScenario",
    "SucroseWarning",
    "UnsafeCheckpointError",
    "current",
    "epoch_range",
    "load_config",
    "logger",
    "new_domain",
    "scenario",
    "step",
]


def __getattr__(name: str) -> Any:
    """``SucroseCheckpoint``, ``SucroseLogger`` and ``SucroseCLI``, imported (with lightning) when used."""
    if name in ("SucroseCheckpoint", "SucroseLogger"):
        from . import lightning

        return getattr(lightning, name)
    if name == "SucroseCLI":
        from .lightning_cli import SucroseCLI

        return SucroseCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scenario(workspace: str | os.PathLike[str], name: str) -> SucroseScenario:
    """Start scenario ``name`` of ``<workspace>/config.yaml`` and make it the current one.

    Args:
        workspace: the folder holding ``config.yaml``.
        name: a domain of that file, e.g. ``"base/case1"``.

    Returns:
        The :class:`SucroseScenario`; :func:`epoch_range` and :func:`step` act on it.

    Raises:
        ConfigError: the config file is missing or has problems (all listed together).
        DomainNotFoundError: ``name`` is not a domain of the file (close names suggested).

    Examples:
        >>> ssc = sucrose.scenario(ws, "base/case1")
        >>> ssc["model.input_dim"], ssc["model.hidden_dim"]
        (200, 100)
    """
    ssc = SucroseScenario(workspace, name)
    set_current(ssc)
    return ssc


def epoch_range(n: int) -> range:
    """``range(last_epoch, last_epoch + n)`` of the current scenario: ``n`` more epochs.

    Examples:
        >>> ssc = sucrose.scenario(ws, "base")
        >>> sucrose.epoch_range(10)  # nothing trained yet
        range(0, 10)
        >>> ssc.close()
    """
    return current().epoch_range(n)


def step(n: int = 1) -> int:
    """Count ``n`` optimizer steps on the current scenario; returns ``ssc.num_steps``.

    Examples:
        >>> ssc = sucrose.scenario(ws, "base")
        >>> sucrose.step(), sucrose.step(), ssc.num_steps
        (1, 2, 2)
    """
    return current().step(n)
