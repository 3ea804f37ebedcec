"""Read the scenario a checkpoint records without torch: only its small pickle, nothing executed.

A torch checkpoint is a zip archive whose ``<archive>/data.pkl`` holds the structure (dicts,
numbers, the sucrose record) and refers to each tensor's bytes by a persistent id. This
module unpickles that entry with an :class:`pickle.Unpickler` that never imports or calls
anything: every class it names becomes a harmless stub, every persistent id a placeholder.
It imports neither torch nor lightning (``sucrose check`` uses it).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

from ._record import META_KEY

__all__ = ["recorded_scenario"]

# data.pkl of a checkpoint holds its structure and small numbers; refuse anything absurd
_MAX_PICKLE_BYTES = 64 << 20


class _Stub:
    """Stands for any class or function a pickle names: accepts and ignores every call."""

    def __new__(cls, *args: Any, **kwds: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwds: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _Peeker(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _Stub  # never import: a reduce then builds a stub instance

    def persistent_load(self, pid: Any) -> Any:
        return None  # a tensor's storage: its bytes are never read


def recorded_scenario(path: str | os.PathLike[str]) -> str | None:
    """The scenario named in the sucrose record of checkpoint ``path``, or ``None``.

    ``None`` when the file has no record (not written by sucrose) or cannot be read (the
    integrity check reports that). Reads only the archive's ``data.pkl``.

    Examples:
        >>> import io, pickle, tempfile, zipfile
        >>> p = tempfile.mkdtemp() + "/x.pt"
        >>> with zipfile.ZipFile(p, "w") as z:
        ...     z.writestr("x/data.pkl", pickle.dumps({"sucrose": {"scenario": "base/a"}}))
        >>> recorded_scenario(p)
        'base/a'
        >>> torch.save({"state_dict": {"w": torch.zeros(2)}}, p)
        >>> recorded_scenario(p) is None
        True
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not names:
                return None
            info = archive.getinfo(names[0])
            if info.file_size > _MAX_PICKLE_BYTES:
                return None
            with archive.open(info) as entry:
                data = _Peeker(entry).load()
    except Exception:  # any damage or odd pickle: not this function's to report
        return None
    record = data.get(META_KEY) if isinstance(data, dict) else None
    scenario = record.get("scenario") if isinstance(record, dict) else None
    return scenario if isinstance(scenario, str) else None
