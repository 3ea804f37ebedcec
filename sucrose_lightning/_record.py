"""The scenario's record inside every checkpoint it writes, and how a resume compares it.

Each checkpoint holds, under :data:`META_KEY`, which scenario wrote it, the merged config and
its file's hash, the epochs and step, and the random states. This module builds that record,
checks its format on load and lists what changed since; it imports neither torch nor lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import same_value
from .errors import CheckpointError, SucroseError

__all__ = [
    "FORMAT_VERSION",
    "META_KEY",
    "build_record",
    "config_diff",
    "drift",
    "load_into",
    "read_record",
    "state_payload",
]

#: Key of the scenario's own record (name, epochs, config, hash, random states) in a checkpoint.
META_KEY = "sucrose"
#: The record's format; a checkpoint with a larger one was written by a newer sucrose.
FORMAT_VERSION = 1

_UNSET = object()


def state_payload(objs: Mapping[str, Any]) -> dict[str, Any]:
    """What the plain loop saves of ``objs``: each one's ``state_dict()``, or the object itself.

    Examples:
        >>> state_payload({"note": "hi", "counts": [1, 2]})
        {'note': 'hi', 'counts': [1, 2]}
    """
    payload: dict[str, Any] = {}
    for key, obj in objs.items():
        state_dict = getattr(obj, "state_dict", None)
        payload[key] = state_dict() if callable(state_dict) else obj
    return payload


def load_into(objs: Mapping[str, Any], data: Mapping[str, Any], path: str) -> None:
    """Give each of ``objs`` its entry of the checkpoint ``data`` (read from ``path``).

    Raises:
        CheckpointError: an entry is missing, or an object refuses its state (named with the file).
        SucroseError: an object has no ``load_state_dict``.

    Examples:
        >>> load_into({"model": object()}, {"other": 1}, "base_e1.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sucrose_lightning.errors.CheckpointError: checkpoint base_e1.pt has no entry 'model' ...
    """
    missing = [k for k in objs if k not in data]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} has no entry {', '.join(map(repr, missing))} "
            f"(entries: {', '.join(repr(k) for k in data if k != META_KEY)})"
        )
    for key, obj in objs.items():
        loader = getattr(obj, "load_state_dict", None)
        if not callable(loader):
            raise SucroseError(f"cannot load {key!r}: {type(obj).__name__} has no load_state_dict()")
        try:
            loader(data[key])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"could not load entry {key!r} of {path} into {type(obj).__name__} ({err}); "
                "was it saved from the same model and config?"
            ) from err


def build_record(
    scenario: str, epochs: int, step: int, config: dict[str, Any], config_file: Any, rng: Any
) -> dict[str, Any]:
    """The record of a checkpoint written now (``config_file`` is the parsed config: path, hash).

    Examples:
        >>> from pathlib import Path
        >>> from sucrose_lightning.config import Config
        >>> rec = build_record("base", 2, 10, {"lr": 0.1}, Config(Path("c.yaml"), {}, sha256="ab"), {})
        >>> rec["format"], rec["scenario"], rec["epochs"], rec["step"], rec["config_sha256"]
        (1, 'base', 2, 10, 'ab')
    """
    return {
        "format": FORMAT_VERSION,
        "scenario": scenario,
        "epochs": epochs,
        "step": step,
        "config": config,
        "config_sha256": config_file.sha256,
        "config_path": str(config_file.path),
        "rng": rng,
    }


def read_record(data: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The sucrose record of a loaded checkpoint, ``None`` when a tool other than sucrose wrote it.

    Raises:
        CheckpointError: the record comes from a newer format than this version reads.

    Examples:
        >>> read_record({"sucrose": {"format": 1, "scenario": "base"}}, "x.pt")["scenario"]
        'base'
        >>> read_record({"state_dict": {}}, "x.pt") is None
        True
        >>> read_record({"sucrose": {"format": 99}}, "x.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sucrose_lightning.errors.CheckpointError: checkpoint x.pt was written by a newer ...
    """
    record = data.get(META_KEY)
    if not isinstance(record, dict):
        return None
    fmt = record.get("format", FORMAT_VERSION)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} was written by a newer sucrose_lightning (record format {fmt}; this "
            f"version reads up to {FORMAT_VERSION}); upgrade sucrose_lightning to resume from it"
        )
    return record


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Lines ``key: old -> new`` for every key whose value differs between two merged configs.

    A key present on one side only shows ``(unset)`` on the other.

    Examples:
        >>> config_diff({"lr": 0.1, "depth": 2}, {"lr": 0.01, "width": 8})
        ['depth: 2 -> (unset)', 'lr: 0.1 -> 0.01', 'width: (unset) -> 8']
    """
    lines = []
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key, _UNSET), new.get(key, _UNSET)
        if before is _UNSET or after is _UNSET or not same_value(before, after):
            lines.append(f"{key}: {_show(before)} -> {_show(after)}")
    return lines


def drift(
    record: Mapping[str, Any],
    scenario: str,
    current: Mapping[str, Any],
    config_path: object,
    *,
    action: str = "resuming",
) -> str | None:
    """What differs between a resumed checkpoint's record and the scenario now, or ``None``.

    Both loops warn with this text (or refuse with ``strict_config=True``). The text says that
    restored optimizer and scheduler states keep the values they were saved with.

    Examples:
        >>> print(drift({"scenario": "base", "config": {"lr": 0.1}}, "base", {"lr": 0.01}, "c.yaml"))
        resuming scenario 'base' from a checkpoint whose config differs from c.yaml:
          lr: 0.1 -> 0.01
        (a restored optimizer or scheduler state keeps the values it was saved with, such as
        its lr: set them again after loading to apply the new ones)
        >>> drift({"scenario": "base", "config": {"lr": 0.1}}, "base", {"lr": 0.1}, "c.yaml") is None
        True
    """
    problems = []
    written_by = record.get("scenario")
    if written_by not in (None, scenario):
        problems.append(
            f"it was written by scenario {written_by!r} (renamed? 'sucrose mv {written_by} {scenario}' "
            "renames a scenario with its files and records)"
        )
    recorded = record.get("config")
    if isinstance(recorded, dict):
        problems.extend(config_diff(recorded, current))
    if not problems:
        return None
    return (
        f"{action} scenario {scenario!r} from a checkpoint whose config differs from {config_path}:\n  "
        + "\n  ".join(problems)
        + "\n(a restored optimizer or scheduler state keeps the values it was saved with, such as\n"
        "its lr: set them again after loading to apply the new ones)"
    )


def _show(value: Any) -> str:
    return "(unset)" if value is _UNSET else repr(value)
