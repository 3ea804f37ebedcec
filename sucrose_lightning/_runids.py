"""Tracker run ids kept with the scenario: ``<ckpts>/<scenario>/.sucrose-runs.json``.

An MLflow run id or a W&B run id is what makes every resume of a scenario log into the
same run. It lives next to the checkpoints it belongs to (a scenario started over from no
checkpoint starts a new run), in one small JSON file written atomically (temporary file in
the same folder, fsync, rename). The name starts with a dot, so no checkpoint scan counts it.
Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

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
    fd, tmp = tempfile.mkstemp(prefix=".sucrose-runs.", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, folder / RUNS_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
