"""Real stop signals to real training processes: save, requeue, exit code, history, resume.

Each child is forked from the preloaded forkserver (a real process with its own signal
handlers), sees the environment a SLURM job sees and a fake ``scontrol`` on ``PATH``. It writes a
marker file at a known global step and waits in that batch; the test waits for the marker
(never a sleep) and sends the signal.
"""

from __future__ import annotations

import json
import os
import signal
from multiprocessing.connection import wait
from pathlib import Path

import lit_helpers as H
import preempt_child as C
import pytest
import torch

import sucrose_lightning as sucrose
from child_procs import preloaded_forkserver

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
HOLD_AT = 11  # the 4th batch of the second epoch (8 batches per epoch)
EPOCHS = 3


def _ctx():
    return preloaded_forkserver([*H.PRELOAD, "preempt_child"])


def _start(ctx, ws: Path, out: Path, env: dict, **kwargs):
    proc = ctx.Process(target=C.child_fit, args=(str(ws), "base", EPOCHS, str(out), env), kwargs=kwargs)
    proc.start()
    return proc


def _signal_at_marker(proc, marker: Path, signum: int) -> None:
    while not marker.exists():
        if not proc.is_alive():
            raise AssertionError(f"the child exited ({proc.exitcode}) before writing {marker}")
        wait([proc.sentinel], timeout=0.05)
    os.kill(proc.pid, signum)
    proc.join(120)
    assert not proc.is_alive(), "the child did not exit after the signal"


def _job_env(tmp_path: Path) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    _, log = C.fake_scontrol(bin_dir)
    env = {**C.SLURM_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


def _stop_and_resume(tmp_path: Path, signum: int, stateful: bool = False) -> dict:
    ws = H.write_workspace(tmp_path / "ws", C.CONFIG)
    env, scontrol_log = _job_env(tmp_path)
    ctx = _ctx()
    marker = tmp_path / "reached"
    first = _start(ctx, ws, tmp_path / "first.json", env, hold_at=HOLD_AT, marker=str(marker), stateful=stateful)
    _signal_at_marker(first, marker, signum)
    ssc = sucrose.SucroseScenario(ws, "base")
    stamped = ssc.ckpts_dir / f"base_e1_s{HOLD_AT}.ckpt"
    report = json.loads((tmp_path / "first.json").read_text())
    result = {
        "exitcode": first.exitcode,
        "environment": report["environment"],
        "files": [Path(c.path).name for c in ssc.ckpts()],
        "last": ssc.last_ckpt(),
        "stamped": str(stamped),
        "scontrol": scontrol_log.read_text().splitlines() if scontrol_log.exists() else [],
        "hpc": [str(p) for p in tmp_path.rglob("hpc_ckpt*")],
        "lease": (ssc.ckpts_dir / ".sucrose.lease").exists(),
        "status_after_stop": ssc.status()[-1],
    }
    second = _start(ctx, ws, tmp_path / "second.json", env, stateful=stateful)
    second.join(120)
    result["resume_exitcode"] = second.exitcode
    result["resume"] = json.loads((tmp_path / "second.json").read_text())
    result["status"] = ssc.status()
    result["weights"] = torch.load(str(tmp_path / "second.json") + ".pt")
    result["ssc"] = ssc
    return result


def test_sigusr1_saves_the_stamp_requeues_exits_138_and_resumes(tmp_path):
    r = _stop_and_resume(tmp_path, signal.SIGUSR1)
    assert r["environment"] == "SLURMEnvironment"  # Lightning saw a SLURM job (auto_requeue=True)
    assert r["exitcode"] == 128 + signal.SIGUSR1 == 138
    assert r["files"] == ["base_e1.ckpt", f"base_e1_s{HOLD_AT}.ckpt"]
    assert r["last"] == r["stamped"]
    assert r["scontrol"] == ["requeue 4242"]
    assert r["hpc"] == []
    assert not r["lease"]  # the lock (and its lease) were released
    stopped = r["status_after_stop"]
    assert (stopped.status, stopped.signal, stopped.ckpt, stopped.requeued) == (
        "stopped",
        "SIGUSR1",
        r["stamped"],
        True,
    )
    assert (stopped.kind, stopped.job, stopped.target, stopped.start_epochs) == ("lightning", "4242", EPOCHS, 0)
    # the next start resumed from the stamped file and finished
    assert r["resume_exitcode"] == 0
    assert r["resume"]["resumed_from"] == r["stamped"]
    assert (r["resume"]["epoch"], r["resume"]["step"]) == (EPOCHS, EPOCHS * C.BATCHES)
    assert [s.status for s in r["status"]] == ["stopped", "finished"]
    assert r["status"][-1].start_epochs == 1
    assert r["scontrol"] == ["requeue 4242"]  # the resumed run did not requeue


def test_sigterm_saves_the_stamp_exits_143_without_requeue(tmp_path):
    r = _stop_and_resume(tmp_path, signal.SIGTERM)
    assert r["exitcode"] == 128 + signal.SIGTERM == 143
    assert r["files"] == ["base_e1.ckpt", f"base_e1_s{HOLD_AT}.ckpt"]
    assert r["last"] == r["stamped"]
    assert r["scontrol"] == []  # scancel / spot / Kubernetes: stop, never requeue
    assert r["hpc"] == []
    stopped = r["status_after_stop"]
    assert (stopped.status, stopped.signal, stopped.requeued) == ("stopped", "SIGTERM", False)
    assert r["resume_exitcode"] == 0 and r["resume"]["resumed_from"] == r["stamped"]
    assert [s.status for s in r["status"]] == ["stopped", "finished"]
