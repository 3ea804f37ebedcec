"""DDP on CPU (gloo), for real: two processes launched by Lightning from a script.

The script (``python tests/lit_helpers.py ddp ...``) fits 2 epochs, then a new Trainer resumes
from ``ssc.last_ckpt()`` to 3 epochs. Each rank reports what it saw; rank 0 alone writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lit_helpers as H

import sucrose_lightning as sucrose


def test_ddp_two_processes_write_once_and_resume(tmp_path):
    ws = H.write_workspace(tmp_path / "ws")
    out = tmp_path / "result.json"
    script = Path(H.__file__).resolve()
    proc = subprocess.run(
        [sys.executable, str(script), "ddp", str(ws), "base/case1", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ssc = sucrose.SucroseScenario(ws, "base/case1")
    expected = [str(ssc.ckpts_dir / f"base_case1_e{i}.ckpt") for i in (1, 2, 3)]
    assert [c.path for c in ssc.ckpts()] == expected

    rank0 = json.loads(out.with_suffix(".rank0.json").read_text())
    rank1 = json.loads(out.with_suffix(".rank1.json").read_text())
    # every rank resolved the same last_ckpt() before and after each run
    assert rank0 == rank1
    first, resumed = rank0
    assert first["resumed_from"] is None and first["last_after"] == expected[1]
    assert resumed["resumed_from"] == expected[1] and resumed["last_after"] == expected[2]
    # 32 samples, 2 ranks, batches of 8: 2 steps per epoch; the resumed run continued the count
    assert (first["epoch"], first["step"]) == (2, 4)
    assert (resumed["epoch"], resumed["step"]) == (3, 6)

    # each checkpoint was written once, by rank 0
    writes0 = out.with_suffix(".writes0").read_text().split()
    assert writes0 == expected
    assert not out.with_suffix(".writes1").exists()
    assert not ssc.layout.temp_files()

    # logs: one folder, written by rank 0 only (one event file per run)
    assert first["log_dir"] == resumed["log_dir"] == str(ssc.logs_dir)
    assert len(list(ssc.logs_dir.glob("events.out.tfevents.*"))) == 2
    assert (ssc.logs_dir / "hparams.yaml").is_file()
    assert not list((ws / "logs").rglob("version_*"))
