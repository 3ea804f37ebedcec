"""The lease on shared filesystems, and symlinks planted under every name sucrose writes.

Two nodes sharing a folder are simulated on one machine: the "first node" is a real child
process with the test-only host override ``_SUCROSE_TEST_HOSTNAME=node-a``; the test process
is ``node-b`` and sees no ``flock`` (``_lock.fcntl = None``), as a second node on NFS or Lustre
would not: only the lease can refuse it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sucrose_lightning as sucrose
from sucrose_lightning import _atomic, _lock
from sucrose_lightning.errors import CheckpointError, LockError, SucroseWarning

CONFIG = "base:\n  model.dim: 2\n"
HOLDER = """
import sys, time, pathlib
import sucrose_lightning as sucrose
ssc = sucrose.scenario(sys.argv[1], "base")
for _ in ssc.epoch_range(3):
    pass
pathlib.Path(sys.argv[2]).write_text("holding")
sys.stdin.read()  # hold the lock until the test closes stdin (or kills us)
"""


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(CONFIG)
    return ws


def _start_holder(ws: Path, tmp_path: Path, host: str, **env: str) -> subprocess.Popen:
    marker = tmp_path / f"holding-{host}"
    child_env = {
        **os.environ,
        "PYTHONPATH": str(Path(sucrose.__file__).parents[1]),
        "_SUCROSE_TEST_HOSTNAME": host,
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ws), str(marker)], env=child_env, stdin=subprocess.PIPE
    )
    while not marker.exists():  # the child writes it once it holds the lock and the lease
        if proc.poll() is not None:
            raise AssertionError(f"holder exited with {proc.returncode} before taking the lock")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    return proc


@pytest.fixture
def node_b(monkeypatch):
    """This process as a second node: another host name, and no flock across nodes."""
    monkeypatch.setenv("_SUCROSE_TEST_HOSTNAME", "node-b")
    monkeypatch.setattr(_lock, "fcntl", None)


def test_second_node_is_refused_naming_the_first(tmp_path, node_b):
    ws = _workspace(tmp_path)
    holder = _start_holder(ws, tmp_path, "node-a", SLURM_JOB_ID="777")
    try:
        ssc = sucrose.SucroseScenario(ws, "base")
        with pytest.raises(LockError) as info:
            ssc.acquire_lock()
        message = str(info.value)
        assert f"pid {holder.pid} on host node-a, SLURM job 777" in message
        assert str(ssc.ckpts_dir / ".sucrose.lease") in message
        running = ssc.status()[-1]
        assert (running.status, running.host, running.pid, running.target) == (
            "running",
            "node-a",
            holder.pid,
            3,
        )
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert holder.returncode == 0
    assert not (ssc.ckpts_dir / ".sucrose.lease").exists()
    ssc.acquire_lock()  # the first node finished: the second may start
    ssc.close()
    assert [r.status for r in ssc.status()] == ["finished", "finished"]


def test_dead_first_node_is_reclaimed_after_missed_beats(tmp_path, node_b, monkeypatch):
    ws = _workspace(tmp_path)
    holder = _start_holder(ws, tmp_path, "node-a")
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    ssc = sucrose.SucroseScenario(ws, "base")
    lease = ssc.ckpts_dir / ".sucrose.lease"
    assert lease.exists()  # a killed holder leaves its lease; from node-b its pid cannot be checked
    with pytest.raises(LockError, match="node-a"):
        ssc.acquire_lock()  # its heartbeat is recent: it may still be alive
    late = time.time() + _lock.LEASE_INTERVAL * (_lock.MISSED_BEATS + 1)
    monkeypatch.setattr(_lock, "_now", lambda: late)
    assert ssc.status()[-1].status == "killed"  # no heartbeat: its holder is gone
    with pytest.warns(SucroseWarning, match=rf"reclaimed the lease .* pid {holder.pid} on host node-a"):
        ssc.acquire_lock()
    assert "node-b" in lease.read_text()
    ssc.close()
    assert [r.status for r in ssc.status()] == ["killed", "finished"]


def test_dead_holder_on_this_host_is_reclaimed_at_once(tmp_path):
    ws = _workspace(tmp_path)
    holder = _start_holder(ws, tmp_path, "here", _SUCROSE_TEST_HOSTNAME="")
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    ssc = sucrose.SucroseScenario(ws, "base")
    with pytest.warns(SucroseWarning, match="reclaimed the lease"):
        ssc.acquire_lock()
    ssc.close()
    assert [r.status for r in ssc.status()] == ["killed", "finished"]


def test_heartbeat_refreshes_the_lease(tmp_path, monkeypatch):
    path = tmp_path / ".sucrose.lease"
    lease = _lock.Lease(path, "base", interval=0.01)
    lease.acquire()
    try:
        first = _lock.read_lease(path)["beat"]
        deadline = time.monotonic() + 30
        while _lock.read_lease(path)["beat"] == first:  # the heartbeat thread rewrites it
            assert time.monotonic() < deadline, "no heartbeat within 30 s"
            time.sleep(0.005)
    finally:
        lease.release()
    assert not path.exists()


# --------------------------------------------------------------------------- planted symlinks


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    return victim


@pytest.mark.parametrize("name", [".sucrose.lock", ".sucrose.lease", ".sucrose.runs.jsonl"])
def test_planted_symlink_is_refused_naming_it(tmp_path, outside, name):
    ws = _workspace(tmp_path)
    ssc = sucrose.SucroseScenario(ws, "base")
    ssc.ckpts_dir.mkdir(parents=True)
    planted = ssc.ckpts_dir / name
    planted.symlink_to(outside)
    with pytest.raises(CheckpointError) as info:
        ssc.acquire_lock()
    assert f"{planted} is a symbolic link (pointing to {outside})" in str(info.value)
    assert outside.read_text() == "precious"
    assert not ssc.ckpts_dir.joinpath(".sucrose.lease").exists() or name == ".sucrose.lease"
    planted.unlink()
    ssc.acquire_lock()  # removing it is all it takes
    ssc.close()


def test_planted_checkpoint_symlink_is_refused(tmp_path, outside):
    final = tmp_path / "ckpts" / "base_e1.pt"
    final.parent.mkdir()
    final.symlink_to(outside)
    with pytest.raises(CheckpointError, match=f"checkpoint {final} is a symbolic link"):
        _atomic.atomic_save({"w": 1}, final)
    assert outside.read_text() == "precious" and final.is_symlink()


def test_save_state_dict_never_writes_through_a_planted_checkpoint_link(tmp_path, outside):
    ws = _workspace(tmp_path)
    ssc = sucrose.SucroseScenario(ws, "base")
    ssc.ckpts_dir.mkdir(parents=True)
    planted = ssc.layout.ckpt_path(1)
    planted.symlink_to(outside)
    # the link looks like a (unreadable) newer checkpoint: it is moved aside, never written through
    with pytest.warns(SucroseWarning, match="moved 1 newer checkpoint"):
        ssc.save_state_dict(1, weights={"w": 1})
    ssc.close()
    assert outside.read_text() == "precious"
    assert (ssc.ckpts_dir / ".abandoned" / planted.name).is_symlink()
    assert not planted.is_symlink() and planted.is_file()


def test_planted_temporary_file_symlink_is_refused(tmp_path, outside, monkeypatch):
    final = tmp_path / "ckpts" / "base_e1.pt"
    final.parent.mkdir()
    fixed = final.with_name(".base_e1.pt.1.1.tmp")
    fixed.symlink_to(outside)
    monkeypatch.setattr(_atomic, "temp_path", lambda _final: fixed)
    with pytest.raises(CheckpointError, match=f"temporary file {fixed} is a symbolic link"):
        _atomic.atomic_save({"w": 1}, final)
    assert outside.read_text() == "precious" and not final.exists()


def test_planted_hparams_symlink_is_refused(tmp_path, outside):
    pytest.importorskip("lightning")
    from sucrose_lightning.loggers import SucroseLogger

    ws = _workspace(tmp_path)
    ssc = sucrose.SucroseScenario(ws, "base")
    logger = SucroseLogger(ssc)
    ssc.logs_dir.mkdir(parents=True)
    planted = ssc.logs_dir / "hparams.yaml"
    planted.symlink_to(outside)
    logger.log_hyperparams({"lr": 0.1})
    with pytest.raises(CheckpointError, match=f"hyperparameters file {planted} is a symbolic link"):
        logger.experiment.flush()  # the first use opens the run, which writes the hyperparameters
    assert outside.read_text() == "precious"
