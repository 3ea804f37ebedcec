"""``sucrose run PATTERN... -- COMMAND``: one command per scenario, resumable to the last one.

Which scenarios run comes from each one's run history (:mod:`sucrose_lightning.status`):

* ``finished``: skipped (``--rerun`` runs it again);
* ``running`` (another process holds it now): left alone, and the sweep is not done;
* ``stopped``, ``killed``, ``failed`` or never run: run; the script's ``ssc.last_ckpt()`` /
  ``ssc.load_state_dict()`` resumes it from its newest checkpoint.

``{scenario}`` in the command is replaced by the scenario's name, and the child's environment
has ``SUCROSE_SCENARIO`` and ``SUCROSE_WORKSPACE``. Each child's stdout and stderr are appended
to ``logs/<scenario>/run.log``. SIGINT or SIGTERM to ``sucrose run`` sends SIGTERM to every
child's process group (a Lightning fit with ``ssc.callbacks()`` saves and exits 143; a plain
loop that does not handle SIGTERM dies and resumes from its last saved epoch), waits for them,
and exits ``128 + signal``; a second signal kills the children at once. The exit code is 0 only
when every matched scenario finished.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import SucroseError
from ..layout import Layout
from ..status import RunHistory, RunStatus
from .common import UsageError
from .render import Output, table, to_json

__all__ = ["RUN_LOG", "Job", "RunReport", "elapsed_text", "latest_run", "plan_jobs", "render_run"]

#: The file of each scenario's logs folder that its children's output is appended to.
RUN_LOG = "run.log"


@dataclass
class Job:
    """One scenario of a sweep.

    Attributes:
        scenario: its name.
        before: its newest run's status when the sweep started (``None``: never run).
        action: ``"run"``, ``"skip"`` (finished) or ``"busy"`` (running elsewhere).
        status: its status after the sweep (``None`` while not known).
        exit_code: the child's exit code (negative: the signal that ended it), if one ran.
        elapsed: seconds the child ran.
        log: its ``run.log``.
        epochs: the newest checkpoint's epochs, and the run's target, if known.
        target: the epoch target its newest run recorded.
        note: why a run did not finish, when it is not the history's word.
    """

    scenario: str
    before: str | None
    action: str
    log: Path
    status: str | None = None
    exit_code: int | None = None
    elapsed: float | None = None
    epochs: int | None = None
    target: int | None = None
    note: str = ""

    @property
    def done(self) -> bool:
        """Whether the scenario is finished (skipped as finished, or ran and finished)."""
        return self.status == "finished"


@dataclass
class RunReport:
    """What ``sucrose run`` did.

    Attributes:
        jobs: every matched scenario, in config order.
        interrupted: the signal's name when a signal stopped the sweep.
        code: the exit code.
        launcher: ``"local"`` or ``"slurm"``.
        extra: launcher details (the SLURM job id).
    """

    jobs: list[Job]
    interrupted: str | None = None
    code: int = 0
    launcher: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)


def latest_run(ws: Path, cfg: Config, name: str) -> RunStatus | None:
    """Scenario ``name``'s newest run, or ``None`` (never run, or its history unreadable)."""
    folder = Layout(ws, name, cfg.settings).ckpts_dir
    try:
        return RunHistory(folder, name).latest()
    except SucroseError:
        return None


def plan_jobs(ws: Path, cfg: Config, names: Sequence[str], rerun: bool = False) -> list[Job]:
    """What to do with each scenario, from its run history.

    Examples:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> cfg = Config(ws / "config.yaml", {"base": {}})
        >>> [(j.scenario, j.before, j.action) for j in plan_jobs(ws, cfg, ["base"])]
        [('base', None, 'run')]
    """
    jobs = []
    for name in names:
        latest = latest_run(ws, cfg, name)
        before = None if latest is None else latest.status
        action = "busy" if before == "running" else "skip" if before == "finished" and not rerun else "run"
        job = Job(name, before, action, Layout(ws, name, cfg.settings).logs_dir / RUN_LOG)
        if action != "run":
            job.status = before
            job.target = None if latest is None else latest.target
        if action == "busy" and latest is not None:
            job.note = f"running on {latest.host}/{latest.pid}"
        jobs.append(job)
    return jobs


def check_command(command: Sequence[str]) -> list[str]:
    """The child command as given after ``--``.

    Raises:
        UsageError: no command, or its program is not found.
    """
    if not command:
        raise UsageError(
            "no command: write it after '--', like: sucrose run 'base/lr/*' -- python train.py {scenario}"
        )
    program = command[0]
    if os.sep not in program and shutil.which(program) is None:
        raise UsageError(f"command {program!r} not found on PATH; give its path or install it")
    if os.sep in program and not os.access(program, os.X_OK):
        raise UsageError(f"command {program!r} is not an executable file")
    return list(command)


def elapsed_text(seconds: float | None) -> str:
    """``75.2`` -> ``'1m15s'``.

    Examples:
        >>> elapsed_text(None), elapsed_text(9.4), elapsed_text(75.2), elapsed_text(3725)
        ('-', '9s', '1m15s', '1h02m')
    """
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _epochs(job: Job) -> str:
    if job.epochs is None:
        return "-"
    return f"{job.epochs}" + ("" if job.target is None else f"/{job.target}")


def _state(job: Job) -> str:
    if job.action == "skip":
        return "finished (skipped)"
    if job.action == "busy":
        return job.note or "running elsewhere"
    return job.status or "not started"


def render_run(report: RunReport, fmt: str = "table") -> Output:
    """The sweep's summary as a table or JSON (``fmt="json"``); the exit code is the report's.

    Examples:
        >>> job = Job("base/lr/lr=0.1", None, "run", Path("logs/base/run.log"), "finished", 0, 3.2)
        >>> print(render_run(RunReport([job])).stdout(), end="")
        SCENARIO        STATUS    EPOCHS  ELAPSED  EXIT
        base/lr/lr=0.1  finished       -       3s     0
        1/1 finished
    """
    out = Output(code=report.code)
    if fmt == "json":
        jobs = [
            {
                "scenario": j.scenario,
                "before": j.before,
                "action": j.action,
                "status": j.status,
                "exit_code": j.exit_code,
                "elapsed_s": None if j.elapsed is None else round(j.elapsed, 3),
                "epochs": j.epochs,
                "target": j.target,
                "log": str(j.log),
                "note": j.note or None,
            }
            for j in report.jobs
        ]
        done = sum(j.done for j in report.jobs)
        out.out(
            to_json(
                {
                    "launcher": report.launcher,
                    "finished": done,
                    "total": len(report.jobs),
                    "interrupted": report.interrupted,
                    "exit_code": report.code,
                    **report.extra,
                    "scenarios": jobs,
                }
            )
        )
        return out
    rows = [
        [
            j.scenario,
            _state(j),
            _epochs(j),
            elapsed_text(j.elapsed),
            "-" if j.exit_code is None else str(j.exit_code),
        ]
        for j in report.jobs
    ]
    out.out(table(["SCENARIO", "STATUS", "EPOCHS", "ELAPSED", "EXIT"], rows, right=(2, 3, 4)))
    done = sum(j.done for j in report.jobs)
    tail = f"{done}/{len(report.jobs)} finished"
    if report.interrupted:
        tail += f"; interrupted by {report.interrupted}: run the same command again to finish the sweep"
    elif done < len(report.jobs):
        tail += "; see each scenario's logs/<scenario>/run.log, then run the same command again"
    out.out(tail)
    for j in report.jobs:
        if j.note and j.action == "run":
            out.err(f"sucrose run: {j.scenario}: {j.note}")
    return out


def now() -> float:
    """The clock elapsed times are measured with."""
    return time.monotonic()
