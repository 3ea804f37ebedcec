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
from child_procs import preloaded_forkserver

import sucrose_lightning as sucrose

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
    first = _start(
        ctx, ws, tmp_path / "first.json", env, hold_at=HOLD_AT, marker=str(marker), stateful=stateful
    )
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
    assert (stopped.kind, stopped.job, stopped.target, stopped.start_epochs) == (
        "lightning",
        "4242",
        EPOCHS,
        0,
    )
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


def test_stateful_loader_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    pytest.importorskip("torchdata")
    ctx = _ctx()
    ref_ws = H.write_workspace(tmp_path / "ref", C.CONFIG)
    ref = _start(ctx, ref_ws, tmp_path / "ref.json", {}, stateful=True)
    ref.join(120)
    assert ref.exitcode == 0
    reference = torch.load(str(tmp_path / "ref.json") + ".pt")
    r = _stop_and_resume(tmp_path / "stopped", signal.SIGUSR1, stateful=True)
    assert r["exitcode"] == 138 and r["resume"]["resumed_from"] == r["stamped"]
    assert reference.keys() == r["weights"].keys()
    for key, value in reference.items():
        assert torch.equal(value, r["weights"][key]), key


def test_plain_loader_resume_differs_from_an_uninterrupted_run(tmp_path):
    """What docs/cluster.md says: a plain DataLoader restarts the interrupted epoch's shuffle."""
    ctx = _ctx()
    ref_ws = H.write_workspace(tmp_path / "ref", C.CONFIG)
    ref = _start(ctx, ref_ws, tmp_path / "ref.json", {})
    ref.join(120)
    reference = torch.load(str(tmp_path / "ref.json") + ".pt")
    r = _stop_and_resume(tmp_path / "stopped", signal.SIGTERM)
    assert r["resume"]["step"] == EPOCHS * C.BATCHES  # the same number of steps ...
    assert any(not torch.equal(v, r["weights"][k]) for k, v in reference.items())  # ... other batches


def test_failed_fit_is_recorded_and_signal_handlers_are_restored(tmp_path):
    import lightning.pytorch as pl

    from sucrose_lightning.preemption import SucrosePreemption

    class Boom(H.TinyModule):
        def training_step(self, batch, batch_idx):
            if self.global_step == 2:
                raise FloatingPointError("loss is nan")
            return super().training_step(batch, batch_idx)

    def trainer(callbacks):
        return pl.Trainer(
            accelerator="cpu",
            max_epochs=2,
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )

    H.quiet()
    ws = H.write_workspace(tmp_path / "ws", C.CONFIG)
    ssc = sucrose.SucroseScenario(ws, "base")
    received = []

    def users_handler(signum, frame):
        received.append(signum)

    users = signal.signal(signal.SIGTERM, users_handler)
    try:
        preemption = SucrosePreemption(ssc)  # one instance for both fits
        with pytest.raises(FloatingPointError):
            trainer([*ssc.callbacks(), preemption]).fit(Boom(in_dim=4, hidden=8), C.train_loader(ssc, False))
        run = ssc.status()[-1]
        assert (run.status, run.error, run.target) == ("failed", "FloatingPointError: loss is nan", 2)
        assert not (ssc.ckpts_dir / ".sucrose.lease").exists()
        os.kill(os.getpid(), signal.SIGTERM)  # after a failed fit the signal still reaches the user's handler
        assert received == [signal.SIGTERM]
        trainer([*ssc.callbacks(), preemption]).fit(
            H.TinyModule(in_dim=4, hidden=8), C.train_loader(ssc, False)
        )
        assert [r.status for r in ssc.status()] == ["failed", "finished"]
        assert signal.getsignal(signal.SIGTERM) is users_handler
        os.kill(os.getpid(), signal.SIGTERM)  # after a finished fit too
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, users)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_stop_at_the_same_batch_and_write_once(tmp_path):
    """Two launches (one process each, num_nodes=2, gloo) as SLURM starts them; node 1 alone gets SIGUSR1."""
    ws = H.write_workspace(tmp_path / "ws", C.CONFIG)
    env, scontrol_log = _job_env(tmp_path)
    port = str(_free_port())
    ctx = _ctx()
    marker = tmp_path / "reached"
    hold = 5  # 64 samples / 2 ranks / 8 per batch: 4 batches per epoch; step 5 is in the second epoch
    procs = []
    for rank in (0, 1):
        node_env = {
            **env,
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(rank),
            "SLURM_NODEID": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "SUCROSE_COUNT_WRITES": str(tmp_path / f"writes{rank}"),
        }
        kwargs = {"num_nodes": 2, "strategy": "ddp"}
        if rank == 1:
            kwargs.update(hold_at=hold, marker=str(marker))
        procs.append(_start(ctx, ws, tmp_path / f"node{rank}.json", node_env, **kwargs))
    _signal_at_marker(procs[1], marker, signal.SIGUSR1)
    procs[0].join(120)
    assert [p.exitcode for p in procs] == [138, 138]
    ssc = sucrose.SucroseScenario(ws, "base")
    stamped = str(ssc.ckpts_dir / f"base_e1_s{hold}.ckpt")
    assert [c.path for c in ssc.ckpts()] == [str(ssc.ckpts_dir / "base_e1.ckpt"), stamped]
    assert (tmp_path / "writes0").read_text().split() == [str(ssc.ckpts_dir / "base_e1.ckpt"), stamped]
    assert not (tmp_path / "writes1").exists()
    assert scontrol_log.read_text().splitlines() == ["requeue 4242"]  # once, by rank 0
    assert not list(tmp_path.rglob("hpc_ckpt*"))
    assert [r.status for r in ssc.status()] == ["stopped"]  # one run recorded, by rank 0
    # the next start: both nodes resolve the same last_ckpt() and resume from it
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        node_env = {**env, "SLURM_NTASKS": "2", "SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank)}
        node_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(_start(ctx, ws, tmp_path / f"again{rank}.json", node_env, num_nodes=2, strategy="ddp"))
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    reports = [json.loads((tmp_path / f"again{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["resumed_from"] == reports[1]["resumed_from"] == stamped
    assert reports[0]["last_after"] == reports[1]["last_after"] == str(ssc.ckpts_dir / f"base_e{EPOCHS}.ckpt")
    assert (reports[0]["step"], reports[1]["step"]) == (EPOCHS * 4, EPOCHS * 4)
    assert [r.status for r in ssc.status()] == ["stopped", "finished"]


def test_a_second_preemption_callback_does_nothing(tmp_path):
    import lightning.pytorch as pl

    from sucrose_lightning.preemption import SucrosePreemption

    H.quiet()
    ws = H.write_workspace(tmp_path / "ws", C.CONFIG)
    ssc = sucrose.SucroseScenario(ws, "base")
    callbacks = ssc.callbacks()  # holds the scenario's own SucrosePreemption
    first = next(c for c in callbacks if isinstance(c, SucrosePreemption))
    second = SucrosePreemption(ssc)  # one added by hand, as older scripts did
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=[*callbacks, second],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(H.TinyModule(in_dim=4, hidden=8), C.train_loader(ssc, False))
    assert [r.status for r in ssc.status()] == ["finished"]  # one run recorded, not two
    assert (first._inert, second._inert) == (False, True)
