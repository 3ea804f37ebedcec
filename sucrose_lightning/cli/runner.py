"""``sucrose run``'s local launcher: at most N children at a time, a live table, signals forwarded.

Each child starts in a session of its own (so a terminal's Ctrl-C reaches only ``sucrose run``),
with stdin closed and stdout and stderr appended to ``logs/<scenario>/run.log``. The first
SIGINT or SIGTERM stops launching and sends SIGTERM to every running child's process group,
then waits for them; a second one sends SIGKILL. Imports neither torch nor lightning.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from .. import _atomic
from ..config import Config
from ..inventory import store_of
from .render import table
from .run import Job, RunReport, elapsed_text, latest_run, now

__all__ = ["LocalRunner", "last_line"]

_POLL_S = 0.05  # how often children are polled; the live table is redrawn every _DRAW_S
_DRAW_S = 0.5


def last_line(path: Path, width: int = 60) -> str:
    """The last non-empty line of ``path`` (read from its last 4 KiB), cut to ``width``.

    Examples:
        >>> import tempfile
        >>> log = Path(tempfile.mkdtemp()) / "run.log"
        >>> _ = log.write_text("epoch 1\\nepoch 2\\n\\n")
        >>> last_line(log), last_line(log.with_name("none"))
        ('epoch 2', '')
    """
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class _Child:
    job: Job
    proc: subprocess.Popen[bytes]
    started: float
    run_before: str | None


class LocalRunner:
    """Run ``command`` for each job marked ``run``, at most ``jobs`` at a time.

    Args:
        ws: the workspace folder.
        cfg: its config.
        command: the child command; ``{scenario}`` in any argument is replaced.
        jobs: the most children at a time.
        live: redraw a table on ``stream`` (a terminal) instead of printing one line per event.
        stream: where progress goes (default: stderr).
    """

    def __init__(
        self,
        ws: Path,
        cfg: Config,
        command: Sequence[str],
        jobs: int = 1,
        live: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.ws, self.cfg, self.command, self.jobs = ws, cfg, list(command), jobs
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.signals: list[int] = []
        self._drawn = 0

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    @contextlib.contextmanager
    def _handlers(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # ------------------------------------------------------------------ children

    @contextlib.contextmanager
    def _stop_children_on_error(self, running: list[_Child]) -> Iterator[None]:
        """An error of ``sucrose run`` itself (say, a full disk) stops the children it started."""
        try:
            yield
        except BaseException:
            self._signal_children(running, signal.SIGTERM)
            for child in running:
                child.proc.wait()
            raise

    def _launch(self, job: Job) -> _Child | None:
        _atomic.ensure_dir(job.log.parent)
        argv = [a.replace("{scenario}", job.scenario) for a in self.command]
        env = {**os.environ, "SUCROSE_SCENARIO": job.scenario, "SUCROSE_WORKSPACE": str(self.ws)}
        before = latest_run(self.ws, self.cfg, job.scenario)
        with open(job.log, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"==> sucrose run {stamp}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as err:  # e.g. {scenario} made a program path that does not exist
                job.status, job.note = "failed", f"cannot start {argv[0]!r}: {err.strerror or err}"
                self._event(f"failed {job.scenario}: {job.note}")
                return None
        job.status = "running"
        self._event(f"started {job.scenario} (pid {proc.pid})")
        return _Child(job, proc, now(), None if before is None else before.run)

    def _finish(self, child: _Child, code: int) -> None:
        job = child.job
        job.exit_code, job.elapsed = code, now() - child.started
        latest = latest_run(self.ws, self.cfg, job.scenario)
        fresh = latest is not None and latest.run != child.run_before
        if fresh and latest is not None:
            job.target = latest.target
            job.status = latest.status
            if latest.status == "running":  # its lease outlives it for a moment only on another host
                job.status = "killed"
            if job.status == "finished" and code != 0:
                job.status, job.note = "failed", f"its run finished but the command exited {code}"
            elif job.status == "failed" and latest.error:
                job.note = latest.error
        else:
            job.status = "unrecorded" if code == 0 else "failed" if code > 0 else "killed"
            job.note = f"the command exited {code} without recording a run of the scenario"
        job.epochs = self._epochs(job.scenario)
        self._event(f"{job.status} {job.scenario} (exit {code}, {elapsed_text(job.elapsed)})")

    def _epochs(self, name: str) -> int | None:
        try:
            files = store_of(self.ws, name, self.cfg.settings).files()
        except (OSError, ValueError):
            return None
        return max((f.epochs for f in files), default=None)

    def _signal_children(self, running: list[_Child], sig: int) -> None:
        for child in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, sig)

    # ------------------------------------------------------------------ progress

    def _event(self, text: str) -> None:
        if not self.live:
            print(f"sucrose run: {text}", file=self.stream, flush=True)

    def _draw(self, report: RunReport, running: list[_Child]) -> None:
        if not self.live:
            return
        by_name = {c.job.scenario: c for c in running}
        rows = []
        for job in report.jobs:
            child = by_name.get(job.scenario)
            if child is not None:
                latest = latest_run(self.ws, self.cfg, job.scenario)
                epochs = self._epochs(job.scenario)
                target = None if latest is None else latest.target
                shown = "-" if epochs is None else f"{epochs}" + ("" if target is None else f"/{target}")
                rows.append(
                    [job.scenario, "running", shown, elapsed_text(now() - child.started), last_line(job.log)]
                )
            else:
                state = {"skip": "finished (skipped)", "busy": "running elsewhere"}.get(job.action)
                done = "-" if job.epochs is None else str(job.epochs)
                rows.append(
                    [job.scenario, state or job.status or "waiting", done, elapsed_text(job.elapsed), ""]
                )
        text = table(["SCENARIO", "STATUS", "EPOCH", "ELAPSED", "LAST LINE"], rows, right=(2, 3))
        erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.stream.write(erase + text + "\n")
        self.stream.flush()
        self._drawn = text.count("\n") + 1

    # ------------------------------------------------------------------ the loop

    def run(self, report: RunReport) -> RunReport:
        """Run the report's jobs; fills in each one's outcome and the report's exit code."""
        pending = [j for j in report.jobs if j.action == "run"]
        running: list[_Child] = []
        forwarded = 0
        last_draw = 0.0
        with self._handlers(), self._stop_children_on_error(running):
            while pending or running:
                if self.signals and forwarded < len(self.signals):
                    sig = signal.SIGTERM if forwarded == 0 else signal.SIGKILL
                    if forwarded == 0:
                        self._event(
                            f"{signal.Signals(self.signals[0]).name}: stopping {len(running)} running"
                        )
                        for job in pending:
                            job.status, job.note = None, "not started: the sweep was interrupted"
                        pending = []
                    self._signal_children(running, sig)
                    forwarded = len(self.signals)
                while pending and len(running) < self.jobs and not self.signals:
                    child = self._launch(pending.pop(0))
                    if child is not None:
                        running.append(child)
                for child in list(running):
                    code = child.proc.poll()
                    if code is not None:
                        running.remove(child)
                        self._finish(child, code)
                if now() - last_draw >= _DRAW_S or not (pending or running):
                    self._draw(report, running)
                    last_draw = now()
                if pending or running:
                    time.sleep(_POLL_S)
        if self.signals:
            report.interrupted = signal.Signals(self.signals[0]).name
            report.code = 128 + self.signals[0]
        else:
            report.code = 0 if all(j.done for j in report.jobs) else 1
        return report
