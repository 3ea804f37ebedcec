"""What the Lightning side needs of a scenario, as a protocol (no import of ``scenario.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from .config import Config
from .layout import Layout
from .store import CheckpointStore

__all__ = ["ScenarioLike"]


class ScenarioLike(Protocol):
    """What the Lightning side needs of a scenario (a :class:`~sucrose_lightning.SucroseScenario`).

    Spelled out as a protocol so that the Lightning modules need not import ``scenario.py``,
    which imports them (lazily) for ``ssc.callbacks()`` and ``ssc.logger()``.
    """

    @property
    def name(self) -> str: ...
    @property
    def workspace(self) -> Path: ...
    @property
    def ckpts_dir(self) -> Path: ...
    @property
    def logs_dir(self) -> Path: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def store(self) -> CheckpointStore: ...
    @property
    def config_file(self) -> Config: ...
    def meta(self, epochs: int, step: int | None = None) -> dict[str, Any]: ...
    def hparams(self, prefix: str | None = None) -> dict[str, Any]: ...
    def unused_keys(self) -> list[str]: ...
