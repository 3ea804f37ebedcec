"""The run history: each run's outcome, for the plain loop and for Lightning, and `sucrose ls`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import sucrose_lightning as sucrose
from sucrose_lightning.cli import main as cli_main
from sucrose_lightning.status import STATUS_FILE, RunHistory

CONFIG = "base:\n  model.dim: 2\nbase/wide:\n  model.dim: 4\n"


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(CONFIG)
    return ws


def _script(ws: Path, body: str) -> subprocess.CompletedProcess:
    code = f"import sys, sucrose_lightning as sucrose\nssc = sucrose.scenario({str(ws)!r}, 'base')\n{body}"
    env = {**os.environ, "PYTHONPATH": str(Path(sucrose.__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_plain_loop_with_block_records_finished_and_failed(tmp_path):
    ws = _workspace(tmp_path)
    with sucrose.scenario(ws, "base") as ssc:
        for _ in sucrose.epoch_range(2):
            ssc.save_state_dict(1, weights={"w": 1})
    with pytest.raises(ValueError), sucrose.scenario(ws, "base") as ssc:
        for _ in ssc.epoch_range(3):
            raise ValueError("loss is nan\nsecond line")
    first, second = ssc.status()
    assert (first.kind, first.status, first.start_epochs, first.target) == ("plain", "finished", 0, 2)
    assert (second.status, second.error, second.start_epochs, second.target) == (
        "failed",
        "ValueError: loss is nan",
        2,
        5,
    )
    assert first.host and first.pid == os.getpid() and first.job is None


def test_plain_loop_without_with_block_records_the_exit(tmp_path):
    ws = _workspace(tmp_path)
    ok = _script(ws, "for _ in ssc.epoch_range(2):\n    pass\n")
    assert ok.returncode == 0, ok.stderr
    bad = _script(ws, "for _ in ssc.epoch_range(2):\n    raise RuntimeError('out of memory')\n")
    assert bad.returncode == 1 and "out of memory" in bad.stderr
    runs = sucrose.SucroseScenario(ws, "base").status()
    assert [(r.status, r.error) for r in runs] == [
        ("finished", None),
        ("failed", "RuntimeError: out of memory"),
    ]


def test_killed_run_is_found_by_the_next(tmp_path):
    ws = _workspace(tmp_path)
    marker = tmp_path / "holding"
    body = f"for _ in ssc.epoch_range(2):\n    open({str(marker)!r}, 'w').close()\n    sys.stdin.read()\n"
    code = f"import sys, sucrose_lightning as sucrose\nssc = sucrose.scenario({str(ws)!r}, 'base')\n{body}"
    env = {**os.environ, "PYTHONPATH": str(Path(sucrose.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE)
    while not marker.exists():
        assert proc.poll() is None, "the child died before taking the lock"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    ssc = sucrose.SucroseScenario(ws, "base")
    assert ssc.status()[-1].status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert ssc.status()[-1].status == "killed"  # derived: no live holder
    with pytest.warns(sucrose.SucroseWarning, match="reclaimed"):
        ssc.acquire_lock()
    ssc.close()
    events = [json.loads(line) for line in (ssc.ckpts_dir / STATUS_FILE).read_text().splitlines()]
    assert [e["status"] for e in events if e["event"] == "end"] == ["killed", "finished"]  # recorded


def test_torn_last_line_is_skipped(tmp_path):
    history = RunHistory(tmp_path, "base")
    run = history.start("plain")
    history.end(run, "finished")
    with open(history.path, "ab") as f:
        f.write(b'{"event": "start", "run": "x:1:2", "ki')  # a crash mid-write
    assert [r.status for r in history.runs()] == ["finished"]
    second = history.start("plain")  # the next line starts after the torn one
    history.end(second, "failed", error="E: x")
    assert [r.status for r in history.runs()] == ["finished", "failed"]


def test_ls_shows_status_and_target_and_json_history(tmp_path, capsys):
    ws = _workspace(tmp_path)
    with sucrose.scenario(ws, "base") as ssc:
        for _ in ssc.epoch_range(3):
            ssc.save_state_dict(1, weights={"w": 1})
    with pytest.raises(KeyError), sucrose.scenario(ws, "base/wide") as wide:
        for _ in wide.epoch_range(10):
            wide.save_state_dict(1, weights={"w": 1})
            raise KeyError("x")
    assert cli_main(["-w", str(ws), "ls"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["SCENARIO", "EPOCHS", "CKPTS", "NEWEST", "LOGS", "STATUS"]
    assert lines[1].split()[:3] == ["base", "3/3", "3"] and lines[1].split()[-1] == "finished"
    assert lines[2].split()[:3] == ["base/wide", "1/10", "1"] and "failed" in lines[2]
    assert cli_main(["-w", str(ws), "ls", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    base, wide_json = data["scenarios"]
    assert base["status"] == "finished" and base["target"] == 3
    assert [r["status"] for r in wide_json["history"]] == ["failed"]
    assert wide_json["history"][0]["error"] == "KeyError: 'x'"
