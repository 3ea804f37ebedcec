"""Read scalars from a scenario's TensorBoard event files with tensorboard's own reader.

Only tensorboard (a dependency of the package) is imported here, never torch or
lightning: reading logs does not need either. A scenario's event files are the
``events.out.tfevents.*`` files directly in its logs folder
(``<workspace>/logs/<scenario>/``), plus those in Lightning-style ``version_<n>/``
sub-folders; other sub-folders belong to child scenarios and are not read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .layout import VERSION_DIR

__all__ = ["EVENT_MARK", "ScalarPoint", "event_dirs", "has_events", "read_scalars"]

#: Every TensorBoard event file name contains this.
EVENT_MARK = "tfevents"


@dataclass(frozen=True)
class ScalarPoint:
    """One logged scalar value.

    Attributes:
        step: the global step it was logged at.
        wall_time: seconds since the epoch when it was logged.
        value: the value.
    """

    step: int
    wall_time: float
    value: float


def _event_files(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if EVENT_MARK in e.name and e.is_file()]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def event_dirs(logs_dir: str | os.PathLike[str]) -> list[Path]:
    """The folders holding a scenario's event files: ``logs_dir`` and its ``version_<n>`` folders.

    Examples:
        >>> import tempfile
        >>> event_dirs(tempfile.mkdtemp())
        []
    """
    root = Path(logs_dir)
    found = [root] if _event_files(root) else []
    try:
        with os.scandir(root) as entries:
            versions = sorted(
                (e.name for e in entries if e.is_dir() and VERSION_DIR.fullmatch(e.name)),
                key=lambda n: int(n.split("_")[1]),
            )
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        versions = []
    found.extend(root / v for v in versions if _event_files(root / v))
    return found


def has_events(logs_dir: str | os.PathLike[str]) -> bool:
    """Whether ``logs_dir`` holds TensorBoard event files (cheap: lists folders only).

    Examples:
        >>> import tempfile
        >>> has_events(tempfile.mkdtemp())
        False
    """
    return bool(event_dirs(logs_dir))


def _tensor_value(event: object) -> float | None:
    from tensorboard.util import tensor_util

    try:
        array = tensor_util.make_ndarray(event.tensor_proto)  # type: ignore[attr-defined]
    except Exception:  # an odd tensor is skipped, not fatal
        return None
    if array.size != 1 or array.dtype.kind not in "biuf":
        return None
    return float(array.reshape(()).item())


def read_scalars(
    logs_dir: str | os.PathLike[str], tags: list[str] | None = None
) -> dict[str, list[ScalarPoint]]:
    """Every scalar series in a scenario's logs, as tag -> points sorted by step.

    Uses ``tensorboard``'s ``EventAccumulator`` with no sampling (``size_guidance``
    ``scalars=0``: every point is kept). Scalars logged as single-value tensors (TF2 style)
    are read too. When a resumed run logged a step again, the value written last wins,
    so each step appears once.

    Args:
        logs_dir: the scenario's logs folder.
        tags: read only these tags (all when ``None``).

    Returns:
        Tag -> points, tags sorted; empty when there are no event files.

    Examples:
        >>> import tempfile
        >>> read_scalars(tempfile.mkdtemp())
        {}
    """
    from tensorboard.backend.event_processing import event_accumulator as ea

    guidance = {
        ea.SCALARS: 0,
        ea.TENSORS: 0,
        ea.HISTOGRAMS: 1,
        ea.IMAGES: 1,
        ea.AUDIO: 1,
        ea.COMPRESSED_HISTOGRAMS: 1,
    }
    raw: dict[str, list[ScalarPoint]] = {}
    for folder in event_dirs(logs_dir):
        acc = ea.EventAccumulator(str(folder), size_guidance=guidance)
        acc.Reload()
        found = acc.Tags()
        for tag in found.get(ea.SCALARS, []):
            if tags is None or tag in tags:
                raw.setdefault(tag, []).extend(
                    ScalarPoint(int(e.step), float(e.wall_time), float(e.value)) for e in acc.Scalars(tag)
                )
        for tag in found.get(ea.TENSORS, []):
            if tags is not None and tag not in tags:
                continue
            for event in acc.Tensors(tag):
                value = _tensor_value(event)
                if value is not None:
                    raw.setdefault(tag, []).append(
                        ScalarPoint(int(event.step), float(event.wall_time), value)
                    )
    out: dict[str, list[ScalarPoint]] = {}
    for tag in sorted(raw):
        by_step: dict[int, ScalarPoint] = {}
        for point in sorted(raw[tag], key=lambda p: (p.step, p.wall_time)):
            by_step[point.step] = point
        out[tag] = list(by_step.values())
    return out
