"""``sucrose run --launcher slurm``: the sweep as one SLURM job array, through submitit.

Each array task runs :class:`SweepTask`: the command for one scenario, in a session of its own,
its output appended to ``logs/<scenario>/run.log``. When SLURM preempts the task or its time
runs out, submitit signals it and calls :meth:`SweepTask.checkpoint`: the command gets SIGTERM
(a Lightning fit saves, a plain loop resumes from its last epoch), the task waits for it and
is requeued with the same scenario. Needs the ``slurm`` extra (``pip install
'sucrose-lightning[slurm]'``); ``--cluster local`` runs the array on this machine with
submitit's local executor (tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from .common import UsageError
from .run import Job, RunReport, latest_run, now

__all__ = ["SLURM_INSTALL_HINT", "SlurmOptions", "SweepTask", "run_slurm"]

SLURM_INSTALL_HINT = (
    "sucrose run --launcher slurm needs submitit, which is not installed; "
    "install it with: pip install 'sucrose-lightning[slurm]'"
)


@dataclass
class SlurmOptions:
    """The resources of each array task.

    Attributes:
        partition: the SLURM partition (``None``: the cluster's default).
        minutes: the time limit of each task.
        gpus: GPUs per task.
        cpus: CPUs per task.
        mem_gb: memory per task (``None``: the cluster's default).
        parallel: the most tasks running at once (``-j``).
        cluster: submitit's executor: ``"slurm"``, or ``"local"`` / ``"debug"`` on this machine.
    """

    partition: str | None = None
    minutes: int = 60
    gpus: int = 0
    cpus: int = 1
    mem_gb: int | None = None
    parallel: int = 1
    cluster: str = "slurm"


class SweepTask:
    """One scenario's command, run inside an array task; requeued by submitit on preemption.

    Args:
        ws: the workspace folder.
        scenario: the scenario's name.
        command: the command, ``{scenario}`` already replaced.
        log: its ``run.log``.
    """

    def __init__(self, ws: Path, scenario: str, command: list[str], log: Path) -> None:
        self.ws, self.scenario, self.command, self.log = ws, scenario, command, log
        self._proc: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_proc": None}

    def __call__(self) -> int:
        """Run the command; returns its exit code."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SUCROSE_SCENARIO": self.scenario, "SUCROSE_WORKSPACE": str(self.ws)}
        with open(self.log, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            job = os.environ.get("SLURM_JOB_ID", os.environ.get("SUBMITIT_LOCAL_JOB_ID", "-"))
            log.write(f"==> sucrose run (slurm job {job}) {stamp}: {' '.join(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self._proc.wait()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on preemption or timeout: stop the command (it saves), then requeue."""
        from submitit.helpers import DelayedSubmission

        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            # This runs in a signal handler that may have interrupted proc.wait() (which holds
            # the Popen's lock): wait for the exit without reaping it, so no lock is needed.
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        return DelayedSubmission(SweepTask(self.ws, self.scenario, self.command, self.log))


def _executor(folder: Path, options: SlurmOptions) -> Any:
    try:
        import submitit
    except ImportError:
        raise UsageError(SLURM_INSTALL_HINT) from None
    executor = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    params: dict[str, Any] = {
        "name": "sucrose-run",
        "timeout_min": options.minutes,
        "gpus_per_node": options.gpus,
        "cpus_per_task": options.cpus,
        "slurm_array_parallelism": options.parallel,
    }
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.mem_gb is not None:
        params["mem_gb"] = options.mem_gb
    executor.update_parameters(**params)
    return executor


def run_slurm(
    ws: Path, cfg: Config, command: list[str], report: RunReport, options: SlurmOptions
) -> RunReport:
    """Submit the jobs marked ``run`` as one array, wait for it, fill in each outcome.

    SIGINT or SIGTERM while waiting cancels the array's tasks (each one's command gets a stop
    signal) and exits ``128 + signal``.

    Raises:
        UsageError: submitit is not installed.
    """
    todo = [j for j in report.jobs if j.action == "run"]
    if not todo:
        report.code = 0 if all(j.done for j in report.jobs) else 1
        return report
    executor = _executor(ws / cfg.settings.logs_folder / ".submitit", options)
    tasks = [
        SweepTask(ws, j.scenario, [a.replace("{scenario}", j.scenario) for a in command], j.log) for j in todo
    ]
    before = {j.scenario: latest_run(ws, cfg, j.scenario) for j in todo}
    started = now()
    with executor.batch():
        handles = [executor.submit(task) for task in tasks]
    report.extra["slurm_jobs"] = [str(h.job_id) for h in handles]
    received: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: received.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not all(h.done() for h in handles):
            if received:
                for h in handles:
                    with contextlib.suppress(Exception):
                        h.cancel(check=False)
                break
            time.sleep(0.2)
        for h in handles:  # after a cancel, until each task's command has stopped
            while not h.done():
                time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for job, handle in zip(todo, handles, strict=True):
        _outcome(ws, cfg, job, handle, before[job.scenario], now() - started)
    if received:
        report.interrupted = signal.Signals(received[0]).name
        report.code = 128 + received[0]
    else:
        report.code = 0 if all(j.done for j in report.jobs) else 1
    return report


def _outcome(ws: Path, cfg: Config, job: Job, handle: Any, before: Any, elapsed: float) -> None:
    job.elapsed = elapsed
    try:
        job.exit_code = int(handle.result())
    except Exception as err:  # the task failed or was cancelled: submitit's own error
        job.note = (
            f"SLURM task {handle.job_id}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        )
    latest = latest_run(ws, cfg, job.scenario)
    if latest is None or (before is not None and latest.run == before.run):
        job.status = "unrecorded" if job.exit_code == 0 else "failed"
        job.note = job.note or f"the command exited {job.exit_code} without recording a run of the scenario"
        return
    job.target = latest.target
    job.status = "killed" if latest.status == "running" else latest.status
    if job.status == "finished" and job.exit_code != 0:
        job.status = "failed"
        job.note = job.note or f"its run finished but the command exited {job.exit_code}"
