"""Tracker run ids kept with the scenario: ``<ckpts>/<scenario>/.sucrose-runs.json``.

An MLflow run id or a W&B run id is what makes every resume of a scenario log into the
same run. It lives next to the checkpoints it belongs to (a scenario started over from no
checkpoint starts a new run), in one small JSON file written atomically (temporary file in
the same folder, fsync, rename). The name starts with a dot, so no checkpoint scan counts it.
Imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_bytes
from .errors import SucroseError

__all__ = ["RUNS_FILE", "read_run", "write_run"]

RUNS_FILE = ".sucrose-runs.json"


def _read_all(folder: Path) -> dict[str, Any]:
    path = folder / RUNS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError as err:
        raise SucroseError(
            f"{path} is not valid JSON ({err}); it keeps the tracker run ids of the scenario: fix it, "
            "or delete it to start new tracker runs"
        ) from None
    if not isinstance(data, dict):
        raise SucroseError(f"{path} should hold a JSON object of tracker runs; delete it to start new runs")
    return data


def read_run(folder: Path, tracker: str) -> dict[str, Any] | None:
    """The run recorded for ``tracker`` (``"mlflow"``, ``"wandb"``) in ``folder``, or ``None``.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> read_run(folder, "wandb") is None
        True
        >>> write_run(folder, "wandb", {"id": "abc123"})
        >>> read_run(folder, "wandb")
        {'id': 'abc123'}
    """
    entry = _read_all(folder).get(tracker)
    return entry if isinstance(entry, dict) else None


def write_run(folder: Path, tracker: str, entry: dict[str, Any] | None) -> None:
    """Record ``entry`` for ``tracker`` (``None`` forgets it); other trackers' entries are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    data = _read_all(folder)
    if entry is None:
        data.pop(tracker, None)
    else:
        data[tracker] = entry
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(folder / RUNS_FILE, text.encode("utf-8"), "run-id file")
