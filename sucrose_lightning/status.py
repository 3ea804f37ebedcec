"""A scenario's run history: one crash-safe line per event in ``<ckpts_dir>/.sucrose.runs.jsonl``.

Each run (a Lightning ``fit`` or a plain loop's writer session) appends a ``start`` event
(time, host, pid, SLURM job id, kind, epochs at start and, once known, the epoch target) and
an ``end`` event with its outcome:

* ``finished``: the fit reached its end (the plain loop: its session closed normally);
* ``stopped``: a stop signal arrived, the stamped checkpoint was written, the run exited;
* ``failed``: an exception ended it (its type and message are recorded);
* ``killed``: found later: the run has no ``end`` and its holder is gone (the next run that
  takes the scenario's lock records it).

A run with no ``end`` shows as ``running`` while the scenario's lease names its host and pid
and is not stale, else as ``killed``. Every line is written with one ``O_APPEND`` write and
fsynced, never through a symlink; a torn last line (a crash mid-write) is skipped on reading.
Only the lock holder appends. This module imports neither torch nor lightning.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import _atomic
from ._lock import LEASE_FILE, hostname, job_id, lease_is_stale, read_lease
from .errors import CheckpointError

__all__ = [
    "OUTCOMES",
    "STATUS_FILE",
    "RunHandle",
    "RunHistory",
    "RunStatus",
    "error_text",
    "track_until_exit",
]

STATUS_FILE = ".sucrose.runs.jsonl"
#: Every status a run can have.
OUTCOMES = ("running", "finished", "stopped", "failed", "killed")
_COMPACT_AT = 2000  # lines; the history is rewritten keeping the newest _KEEP_RUNS runs
_KEEP_RUNS = 200


@dataclass
class RunStatus:
    """One run of a scenario, as the history tells it.

    Attributes:
        run: the run's id (``<host>:<pid>:<start ns>``).
        kind: ``"lightning"`` or ``"plain"``.
        status: one of :data:`OUTCOMES`.
        started: start time (local, ``YYYY-mm-dd HH:MM:SS``).
        host: the machine it ran on.
        pid: its process id.
        job: the SLURM job id, or ``None``.
        start_epochs: epochs finished when it started.
        target: the epochs it was asked to reach (``max_epochs``, ``epoch_range``), if known.
        ended: end time, or ``None``.
        error: ``"<type>: <message>"`` of a failure.
        signal: the stop signal's name for a stopped run.
        ckpt: the checkpoint a stopped run wrote.
        requeued: whether a stopped run's SLURM job was requeued.
    """

    run: str
    kind: str
    status: str
    started: str
    host: str
    pid: int
    job: str | None = None
    start_epochs: int | None = None
    target: int | None = None
    ended: str | None = None
    error: str | None = None
    signal: str | None = None
    ckpt: str | None = None
    requeued: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``sucrose ls --format json``."""
        return asdict(self)


class RunHistory:
    """The run history of one scenario's checkpoint folder.

    Args:
        folder: the scenario's checkpoint folder.
        scenario: its name, for messages.

    Examples:
        >>> import tempfile
        >>> history = RunHistory(Path(tempfile.mkdtemp()), "base")
        >>> run = history.start("plain", start_epochs=0, target=3)
        >>> history.end(run, "finished")
        >>> last = history.runs()[-1]
        >>> last.status, last.target, last.pid == os.getpid()
        ('finished', 3, True)
        >>> _ = history.start("plain")  # never ended, and no lease names it: its holder is gone
        >>> [r.status for r in history.runs()]
        ['finished', 'killed']
    """

    def __init__(self, folder: Path, scenario: str) -> None:
        self.folder = folder
        self.scenario = scenario
        self.path = folder / STATUS_FILE

    # ------------------------------------------------------------------ writing (lock holder)

    def _append(self, event: dict[str, Any]) -> None:
        _atomic.ensure_dir(self.folder)
        line = json.dumps(event, default=str).encode()
        _atomic.append_line(self.path, line, "run history")

    def start(self, kind: str, *, start_epochs: int | None = None, target: int | None = None) -> str:
        """Record a run's start; returns its id."""
        self._compact()
        run = f"{hostname()}:{os.getpid()}:{time.time_ns()}"
        self._append(
            {
                "event": "start",
                "run": run,
                "kind": kind,
                "time": _now(),
                "host": hostname(),
                "pid": os.getpid(),
                "job": job_id(),
                "start_epochs": start_epochs,
                "target": target,
            }
        )
        return run

    def set_target(self, run: str, target: int | None, start_epochs: int | None = None) -> None:
        """Record the epoch target once it is known (``max_epochs`` at ``fit`` start)."""
        self._append({"event": "target", "run": run, "target": target, "start_epochs": start_epochs})

    def end(self, run: str, status: str, **fields: Any) -> None:
        """Record a run's outcome (``finished``, ``stopped``, ``failed``); ``fields``: error, signal, ckpt."""
        if status not in OUTCOMES or status == "running":
            raise ValueError(f"not an outcome: {status!r}")
        self._append({"event": "end", "run": run, "status": status, "time": _now(), **fields})

    def reap(self) -> list[str]:
        """Record every run without an end as ``killed`` (call it right after taking the lock)."""
        open_runs = [r.run for r in self._fold() if r.ended is None]
        for run in open_runs:
            self._append({"event": "end", "run": run, "status": "killed", "time": _now()})
        return open_runs

    def _compact(self) -> None:
        try:
            lines = self._lines()
        except CheckpointError:
            return
        if len(lines) < _COMPACT_AT:
            return
        keep = {r.run for r in self._fold(lines)[-_KEEP_RUNS:]}
        kept = [json.dumps(e) for e in lines if e.get("run") in keep]
        _atomic.atomic_write_bytes(self.path, ("\n".join(kept) + "\n").encode(), "run history")

    # ------------------------------------------------------------------ reading

    def _lines(self) -> list[dict[str, Any]]:
        if os.path.islink(self.path):
            _atomic.refuse_symlink(self.path, "run history")
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise CheckpointError(
                f"cannot read the run history {self.path}: {_atomic.describe(err)}"
            ) from None
        events = []
        for line in raw.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn line of a crash mid-write
            if isinstance(event, dict) and isinstance(event.get("run"), str):
                events.append(event)
        return events

    def _fold(self, events: list[dict[str, Any]] | None = None) -> list[RunStatus]:
        runs: dict[str, RunStatus] = {}
        for e in self._lines() if events is None else events:
            kind = e.get("event")
            if kind == "start":
                runs[e["run"]] = RunStatus(
                    run=e["run"],
                    kind=str(e.get("kind")),
                    status="running",
                    started=str(e.get("time")),
                    host=str(e.get("host")),
                    pid=int(e.get("pid") or 0),
                    job=e.get("job"),
                    start_epochs=e.get("start_epochs"),
                    target=e.get("target"),
                )
            elif e["run"] in runs:
                r = runs[e["run"]]
                if kind == "target":
                    r.target = e.get("target")
                    if e.get("start_epochs") is not None:
                        r.start_epochs = e.get("start_epochs")
                elif kind == "end" and r.ended is None:
                    r.status, r.ended = str(e.get("status")), str(e.get("time"))
                    r.error, r.signal, r.ckpt = e.get("error"), e.get("signal"), e.get("ckpt")
                    r.requeued = e.get("requeued")
        return list(runs.values())

    def runs(self) -> list[RunStatus]:
        """Every recorded run, oldest first; a run without an end is ``running`` or ``killed``."""
        runs = self._fold()
        lease: dict[str, Any] | None = None
        if any(r.ended is None for r in runs):
            try:
                lease = read_lease(self.folder / LEASE_FILE)
            except CheckpointError:
                lease = None
        for r in runs:
            if r.ended is None and not _holder_alive(r, lease):
                r.status = "killed"
        return runs

    def latest(self) -> RunStatus | None:
        """The newest run, or ``None`` when none was recorded."""
        runs = self.runs()
        return runs[-1] if runs else None


def _holder_alive(run: RunStatus, lease: dict[str, Any] | None) -> bool:
    """A run is alive while the scenario's lease names its host and pid and is not stale."""
    return (
        lease is not None
        and bool(lease)
        and lease.get("host") == run.host
        and lease.get("pid") == run.pid
        and not lease_is_stale(lease)
    )


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class RunHandle:
    """The run a writer session records: set its target, end it once.

    Args:
        history: the scenario's history.
        run: the run's id.
    """

    def __init__(self, history: RunHistory, run: str) -> None:
        self.history = history
        self.run = run
        self.ended = False

    def set_target(self, target: int | None, start_epochs: int | None = None) -> None:
        """Record the epochs this run was asked to reach."""
        if not self.ended:
            self.history.set_target(self.run, target, start_epochs)

    def end(self, status: str, **fields: Any) -> None:
        """Record the outcome (only the first call counts)."""
        if not self.ended:
            self.ended = True
            self.history.end(self.run, status, **fields)


def error_text(err: BaseException) -> str:
    """``"<type>: <first line of the message>"``, as the history records a failure.

    Examples:
        >>> error_text(ValueError("bad value\\nmore"))
        'ValueError: bad value'
    """
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:500]


# --------------------------------------------------------------------------- the plain loop's exit

_open_handles: list[RunHandle] = []
_unhandled: list[str] = []
_hooked = False


def track_until_exit(handle: RunHandle) -> None:
    """End ``handle`` at exit if nobody did: ``failed`` after an unhandled exception, else ``finished``."""
    global _hooked
    _open_handles.append(handle)
    if _hooked:
        return
    _hooked = True
    previous = sys.excepthook

    def hook(tp: type[BaseException], value: BaseException, tb: Any) -> None:
        _unhandled.append(error_text(value))
        previous(tp, value, tb)

    sys.excepthook = hook
    atexit.register(_end_open_handles)  # registered after the lock's: runs before it is released


def _end_open_handles() -> None:
    for handle in _open_handles:
        try:
            if _unhandled:
                handle.end("failed", error=_unhandled[-1])
            else:
                handle.end("finished")
        except Exception:  # pragma: no cover - nothing to report to at exit
            pass
    _open_handles.clear()
