"""Plain values about a checkpoint folder: what a retention rule keeps, what a scenario has on
disk, whether a process (a lock holder, a temporary file's writer) still runs.

:class:`~sucrose_lightning.store.CheckpointStore` computes them; this module only defines them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .layout import TEMP_NAME, CkptFile

__all__ = ["Retention", "ScenarioFiles", "mtime_ns", "pid_alive", "pid_of_temp"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine.

    Examples:
        >>> pid_alive(os.getpid()), pid_alive(0)
        (True, False)
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. platforms without signals
        return False
    return True


class Retention(NamedTuple):
    """What a retention rule keeps and deletes (each list oldest first)."""

    delete: list[CkptFile]
    keep: list[CkptFile]
    unreadable: list[CkptFile]


@dataclass
class ScenarioFiles:
    """What one scenario (or orphan folder) has on disk: the inventory ``sucrose ls`` shows.

    Attributes:
        name: the scenario name (folder path under ``ckpts/`` and ``logs/``).
        ckpts: its stamped checkpoints of every extension, oldest first.
        total_size: bytes of all its checkpoints; ``None`` unless asked for
            (``inventory(sizes=True)``: a ``stat`` of every file).
        newest_time: modification time of its most advanced checkpoint (``None`` without
            checkpoints).
        logs: whether its logs folder holds TensorBoard event files.
        unreadable_newer: how many checkpoints newer than :attr:`newest` fail the cheap
            :func:`~sucrose_lightning._atomic.check_file` (a resumed run would skip them).
    """

    name: str
    ckpts: list[CkptFile] = field(default_factory=list)
    total_size: int | None = None
    newest_time: float | None = None
    logs: bool = False
    unreadable_newer: int = 0

    @property
    def newest(self) -> CkptFile | None:
        """The most advanced readable checkpoint (most epochs, then most steps): the epochs done."""
        index = len(self.ckpts) - 1 - self.unreadable_newer
        return self.ckpts[index] if index >= 0 else None


def mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def pid_of_temp(tmp: Path) -> int:
    match = TEMP_NAME.fullmatch(tmp.name)
    return int(match.group(2)) if match else -1
