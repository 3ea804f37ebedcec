"""The benchmark harness runs (``--quick``) so it cannot rot: every case present, every check passing.

Timings are not asserted (a shared CI machine is too noisy); what is asserted is that each case
ran, did the same correct work on both sides, and produced a complete table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
CASES = ["P1", "P1w", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P8m", "P9", "P10"]


def bench(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/run.py`` with ``args`` from the repository root."""
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="P2 reads /proc/self for the OS's RSS counters"
)
def test_quick_benchmarks_run_and_write_the_table(tmp_path: Path) -> None:
    out_md = tmp_path / "BENCHMARKS.md"
    out_json = tmp_path / "bench.json"
    proc = bench(
        "--quick",
        "--no-profile",
        "--out",
        str(out_md),
        "--json",
        str(out_json),
        "--tmp",
        str(tmp_path),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out_json.read_text())
    rows = result["rows"]
    assert [c for c in CASES if not any(r["case"] == c for r in rows)] == []
    for row in rows:
        # a case may only be "not available" where the module it measures is absent
        if row["status"] == "not available":
            assert row["case"] in ("P1w", "P7"), row
            module = "lightning.py" if row["case"] == "P1w" else "cli/__init__.py"
            assert not (REPO / "sucrose_lightning" / module).exists(), row
            continue
        assert row["status"] == "ok", row
        assert row["ours"] is not None and row["ours"] >= 0, row
        assert row["baselines"] and all(v is not None and v > 0 for _, v in row["baselines"]), row
        assert row["target"], row
    # P4 at three folder sizes, P2 at the quick size; P9 for Lightning and the plain loop
    assert sum(r["case"] == "P4" for r in rows) == 3
    assert sum(r["case"] == "P9" for r in rows) == 2
    text = out_md.read_text()
    assert "## Machine" in text and "| case | ours (median) |" in text
    for case in CASES:
        assert f"| {case} " in text
    assert "quick mode" in text


def test_only_selects_cases_and_rejects_unknown(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = bench(
        "--quick", "--only", "P6", "--out", "", "--json", str(out_json), "--tmp", str(tmp_path), timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["case"] for r in rows] == ["P6"]
    bad = bench("--only", "P99", "--out", "", timeout=60)
    assert bad.returncode == 2 and "unknown case" in bad.stderr
