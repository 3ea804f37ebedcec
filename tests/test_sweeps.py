"""``sucrose run``: a real sweep, stopped with SIGTERM halfway and run again, ends as one never stopped."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sucrose_lightning.cli import main
from sucrose_lightning.config import load_config
from sucrose_lightning.status import RunHistory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHILD = HERE / "sweep_child.py"
sys.path.insert(0, str(HERE))

from sweep_child import CONFIG  # noqa: E402


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEP_HOLD", "SUCROSE_SCENARIO")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _sweep(ws: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "sucrose_lightning", "-w", str(ws), "run", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(**env))


def _wait_for(paths: list[Path], proc: subprocess.Popen[str], limit: float = 120.0) -> None:
    """Until every file in ``paths`` exists (the children write them), or fail if ``proc`` ended."""
    deadline = time.monotonic() + limit
    while not all(p.exists() for p in paths):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"sucrose run ended early ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the children never wrote {paths}")
        time.sleep(0.02)


def _statuses(ws: Path, names: list[str]) -> list[str | None]:
    cfg = load_config(ws)
    out = []
    for name in names:
        latest = RunHistory(ws / cfg.settings.ckpts_folder / name, name).latest()
        out.append(None if latest is None else latest.status)
    return out


def test_a_sweep_stopped_halfway_and_run_again_ends_as_one_never_stopped(tmp_path: Path) -> None:
    import torch
    from sweep_child import train

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(CONFIG)
    names = [n for n in load_config(ws).scenarios if n.startswith("base/lr/")]
    assert names == [
        "base/lr/lr=0.1,hidden=4",
        "base/lr/lr=0.1,hidden=8",
        "base/lr/lr=0.05,hidden=4",
        "base/lr/lr=0.05,hidden=8",
        "base/lr/lr=0.01,hidden=4",
        "base/lr/lr=0.01,hidden=8",
    ]
    command = ["-j", "2", "base/lr/*", "--format", "json", "--", sys.executable, str(CHILD)]

    # First sweep: the 3rd and 4th scenarios stop after their first epoch (with -j 2 both run
    # only once the first two finished); SIGTERM once both said so.
    proc = _sweep(ws, *command, SWEEP_HOLD=f"{names[2]}:{names[3]}")
    _wait_for([ws / "held" / n.replace("/", "_") for n in names[2:4]], proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    summary = json.loads(out)
    assert summary["interrupted"] == "SIGTERM"
    assert [j["status"] for j in summary["scenarios"]] == ["finished"] * 2 + ["killed"] * 2 + [None] * 2
    assert _statuses(ws, names) == ["finished"] * 2 + ["killed"] * 2 + [None] * 2
    assert "interrupted by SIGTERM" not in err  # JSON went to stdout, progress lines to stderr
    assert "sucrose run: SIGTERM: stopping 2 running" in err

    # Second sweep: the finished two are skipped, the killed two resume, the last two run.
    proc = _sweep(ws, *command)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert [j["action"] for j in summary["scenarios"]] == ["skip"] * 2 + ["run"] * 4
    assert summary["finished"] == 6 and summary["exit_code"] == 0

    cfg = load_config(ws)
    for name in names:
        runs = RunHistory(ws / cfg.settings.ckpts_folder / name, name).runs()
        assert [r.status for r in runs].count("finished") == 1, (name, runs)
        log = (ws / cfg.settings.logs_folder / name / "run.log").read_text()
        epochs = [line for line in log.splitlines() if line.startswith("EPOCH ")]
        assert epochs == ["EPOCH 1", "EPOCH 2", "EPOCH 3"], (name, log)  # each epoch trained once
    held_log = (ws / cfg.settings.logs_folder / names[2] / "run.log").read_text()
    assert [line.split()[1] for line in held_log.splitlines() if line.startswith("START")] == ["0", "1"]

    # A sweep never stopped (the same script, in this process, in another workspace).
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "config.yaml").write_text(CONFIG)
    for name in names:
        expected = train(str(ref), name)
        got = torch.load(ws / "weights" / (name.replace("/", "_") + ".pt"), weights_only=True)
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), (name, key)

    # A third run has nothing to do: exit 0, every scenario skipped.
    proc = _sweep(ws, *command)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [j["action"] for j in json.loads(out)["scenarios"]] == ["skip"] * 6


_RECORDING_CHILD = textwrap.dedent(
    """
    import os, sys
    import sucrose_lightning as sucrose
    name = os.environ["SUCROSE_SCENARIO"]
    assert sys.argv[1] == name, (sys.argv, name)
    ssc = sucrose.scenario(os.environ["SUCROSE_WORKSPACE"], name)
    for _ in sucrose.epoch_range(1):
        pass
    print("ran", name)
    ssc.close()
    sys.exit(3 if name.endswith("lr=0.01") else 0)
    """
)


@pytest.fixture
def small_ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text("base:\n  optim.lr: 1\nbase/lr:\n  .grid: {optim.lr: [0.1, 0.01]}\n")
    (tmp_path / "child.py").write_text(_RECORDING_CHILD)
    return ws


def _run(ws: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-w", str(ws), "run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_skips_finished_reruns_on_request_and_fails_on_a_failing_child(
    small_ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    child = [sys.executable, str(small_ws.parent / "child.py"), "{scenario}"]
    code, out, err = _run(small_ws, "base/lr/*", "--format", "json", "--", *child, capsys=capsys)
    jobs = json.loads(out)["scenarios"]
    assert code == 1, err
    assert [(j["scenario"], j["status"], j["exit_code"]) for j in jobs] == [
        ("base/lr/lr=0.1", "finished", 0),
        ("base/lr/lr=0.01", "failed", 3),  # its run finished, but the command failed
    ]
    assert "ran base/lr/lr=0.1" in (small_ws / "logs/base/lr/lr=0.1/run.log").read_text()
    code, out, err = _run(small_ws, "base/lr/lr=0.1", "--", *child, capsys=capsys)
    assert code == 0 and "finished (skipped)" in out
    code, out, err = _run(
        small_ws, "--rerun", "base/lr/lr=0.1", "--format", "json", "--", *child, capsys=capsys
    )
    assert code == 0 and json.loads(out)["scenarios"][0]["action"] == "run"
    log = (small_ws / "logs/base/lr/lr=0.1/run.log").read_text()
    assert log.count("ran base/lr/lr=0.1") == 2


def test_run_leaves_a_running_scenario_alone(
    small_ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    marker = small_ws.parent / "holding"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys, sucrose_lightning as s\n"
            "ssc = s.scenario(sys.argv[1], 'base/lr/lr=0.1'); s.epoch_range(1)\n"
            "open(sys.argv[2] + '.part', 'w').close(); os.replace(sys.argv[2] + '.part', sys.argv[2])\n"
            "signal.pause()",
            str(small_ws),
            str(marker),
        ],
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists()
        child = [sys.executable, str(small_ws.parent / "child.py"), "{scenario}"]
        code, out, _ = _run(small_ws, "base/lr/lr=0.1", "--", *child, capsys=capsys)
        assert code == 1
        assert f"running on {os.uname().nodename}/{holder.pid}" in out
        assert not (small_ws / "logs/base/lr/lr=0.1/run.log").exists()
    finally:
        holder.kill()
        holder.wait()


def test_run_usage_errors_name_the_pattern_and_the_command(
    small_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(small_ws, "base/rl/*", "--", "true", capsys=capsys)
    assert code == 2 and "pattern 'base/rl/*' matches no scenario" in err
    code, _, err = _run(small_ws, "base/lr/*", "--", "no-such-program-xyz", capsys=capsys)
    assert code == 2 and "command 'no-such-program-xyz' not found on PATH" in err
    code, _, err = _run(small_ws, "base/lr/*", capsys=capsys)
    assert code == 2 and "no command: write it after '--'" in err
    code, out, err = _run(small_ws, "base/lr/*", "--format", "json", "--", "true", capsys=capsys)
    assert code == 1  # exit 0, but no run of the scenario was recorded
    assert {j["status"] for j in json.loads(out)["scenarios"]} == {"unrecorded"}


def _readme_sweeps() -> tuple[str, str, list[str]]:
    """The README's Sweeps section: its config.yaml, its train.py and its shell lines."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Sweeps\n", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(\w+)\n(.*?)```", section, re.S))
    lines = [line.split("#", 1)[0].strip() for line in blocks["bash"].splitlines()]
    return blocks["yaml"], blocks["python"], [line for line in lines if line]


def test_the_readme_sweeps_section_runs_as_written(tmp_path: Path) -> None:
    config, script, lines = _readme_sweeps()
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / "train.py").write_text(script)
    assert [line.split()[1] for line in lines] == ["run", "ls", "run", "plot"]

    def argv(line: str) -> list[str]:
        words = shlex.split(line)
        words = [sys.executable if w == "python" else w for w in words]
        return [sys.executable, "-m", "sucrose_lightning", *words[1:]]

    def sh(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv(line), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180
        )

    names = [n for n in load_config(tmp_path).scenarios if n.startswith("base/lr/")]
    assert len(names) == 6
    # the first run, stopped once the third scenario saved its first epoch (a file a child writes)
    first = subprocess.Popen(
        argv(lines[0]), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    third = tmp_path / "ckpts" / names[2] / (names[2].replace("/", "_") + "_e1.pt")
    _wait_for([third], first)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143, err
    statuses = _statuses(tmp_path, names)
    assert statuses[:2] == ["finished", "finished"] and statuses != ["finished"] * 6, statuses
    listed = sh(lines[1])
    assert listed.returncode == 0 and "lr=0.1,hidden=8" in listed.stdout
    again = sh(lines[2])
    assert again.returncode == 0, again.stdout + again.stderr
    assert _statuses(tmp_path, names) == ["finished"] * 6
    plot = sh(lines[3])
    if plot.returncode == 2 and "matplotlib" in plot.stderr:
        pytest.skip("matplotlib is not installed")
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "val_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert plot.stdout.count(" points") == 6, plot.stdout


def test_slurm_launcher_runs_the_array_with_submitits_local_executor(
    small_ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    child = [sys.executable, str(small_ws.parent / "child.py"), "{scenario}"]
    args = ["--launcher", "slurm", "--cluster", "local", "-j", "2", "--format", "json"]
    code, out, err = _run(small_ws, *args, "base/lr/*", "--", *child, capsys=capsys)
    summary = json.loads(out)
    assert code == 1, err  # base/lr/lr=0.01's command exits 3
    assert summary["launcher"] == "slurm" and len(summary["slurm_jobs"]) == 2
    assert [(j["status"], j["exit_code"]) for j in summary["scenarios"]] == [("finished", 0), ("failed", 3)]
    assert "ran base/lr/lr=0.1" in (small_ws / "logs/base/lr/lr=0.1/run.log").read_text()
    code, out, err = _run(small_ws, *args, "base/lr/lr=0.1", "--", *child, capsys=capsys)
    assert code == 0 and json.loads(out)["scenarios"][0]["action"] == "skip"


_HOLD_ONCE_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import sucrose_lightning as sucrose
    ws, name = os.environ["SUCROSE_WORKSPACE"], os.environ["SUCROSE_SCENARIO"]
    ssc = sucrose.scenario(ws, name)
    for _ in sucrose.epoch_range(1):
        pass
    marker = os.path.join(ws, "held")
    if not os.path.exists(marker):
        with open(marker + ".part", "w") as f:
            f.write(str(os.getppid()))  # the array task's process, which submitit signals
        os.replace(marker + ".part", marker)
        while True:
            signal.pause()  # until the task's checkpoint() sends SIGTERM
    print("second run finished", name)
    ssc.close()
    """
)


def test_a_preempted_array_task_stops_its_command_and_is_requeued(small_ws: Path) -> None:
    submitit = pytest.importorskip("submitit")
    from sucrose_lightning.cli.slurm import SweepTask

    (small_ws.parent / "hold.py").write_text(_HOLD_ONCE_CHILD)
    name = "base/lr/lr=0.1"
    log = small_ws / "logs" / name / "run.log"
    task = SweepTask(small_ws, name, [sys.executable, str(small_ws.parent / "hold.py")], log)
    executor = submitit.LocalExecutor(folder=str(small_ws.parent / "submitit"))
    executor.update_parameters(timeout_min=5)
    monkey_env = _env()
    saved = dict(os.environ)
    os.environ.update(monkey_env)
    job = None
    try:
        job = executor.submit(task)
        marker = small_ws / "held"
        deadline = time.monotonic() + 60
        while not marker.exists() and not job.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), job.stderr()
        from submitit.local.local import LocalJobEnvironment

        # what SLURM does before preempting (or timing out) the task: the signal submitit handles
        os.kill(int(marker.read_text()), LocalJobEnvironment._usr_sig())
        assert job.result() == 0
    finally:
        if job is not None and not job.done():  # a failed check: stop the task and its command before leaving
            job.cancel()
        os.environ.clear()
        os.environ.update(saved)
    runs = RunHistory(small_ws / "ckpts" / name, name).runs()
    assert [r.status for r in runs] == ["killed", "finished"]
    text = log.read_text()
    assert text.count("==> sucrose run (slurm job") == 2 and "second run finished" in text


_STUBBORN_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import sucrose_lightning as sucrose
    ws, name = os.environ["SUCROSE_WORKSPACE"], os.environ["SUCROSE_SCENARIO"]
    if name.endswith("lr=0.01"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends this one
    ssc = sucrose.scenario(ws, name)
    sucrose.epoch_range(1)
    marker = os.path.join(ws, name.replace("/", "_"))
    open(marker + ".part", "w").close()
    os.replace(marker + ".part", marker)
    while True:
        signal.pause()
    """
)


def test_ctrl_c_stops_the_children_and_a_second_one_kills_them(small_ws: Path) -> None:
    (small_ws.parent / "stubborn.py").write_text(_STUBBORN_CHILD)
    proc = _sweep(
        small_ws,
        "-j",
        "2",
        "base/lr/*",
        "--format",
        "json",
        "--",
        sys.executable,
        str(small_ws.parent / "stubborn.py"),
    )
    names = ["base/lr/lr=0.1", "base/lr/lr=0.01"]
    _wait_for([small_ws / n.replace("/", "_") for n in names], proc)
    proc.send_signal(signal.SIGINT)
    # the first child dies of SIGTERM; the second ignores it, so sucrose run still waits for it
    deadline = time.monotonic() + 60
    while _statuses(small_ws, names)[0] != "killed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] == "SIGINT"
    assert [(j["status"], j["exit_code"]) for j in summary["scenarios"]] == [
        ("killed", -signal.SIGTERM),
        ("killed", -signal.SIGKILL),
    ]


def test_the_live_table_redraws_in_place(small_ws: Path) -> None:
    import io

    from sucrose_lightning.cli.run import RunReport, plan_jobs
    from sucrose_lightning.cli.runner import LocalRunner

    cfg = load_config(small_ws)
    stream = io.StringIO()
    report = RunReport(plan_jobs(small_ws, cfg, ["base/lr/lr=0.1", "base/lr/lr=0.01"]))
    command = [sys.executable, "-c", "print('hello from the child')"]
    LocalRunner(small_ws, cfg, command, jobs=1, live=True, stream=stream).run(report)
    text = stream.getvalue()
    assert text.startswith("SCENARIO ") and "LAST LINE" in text
    assert "\x1b[" in text  # redrawn over the previous table
    assert text.splitlines()[-1].split() == ["base/lr/lr=0.01", "unrecorded", "-", "0s"]
    assert report.code == 1


def test_a_command_that_cannot_start_fails_its_scenario_and_the_sweep_goes_on(
    small_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = small_ws.parent / "not-a-program"
    program.write_bytes(b"\x00\x01 not an executable format\n")
    program.chmod(0o755)
    code, out, _ = _run(small_ws, "base/lr/*", "--format", "json", "--", str(program), capsys=capsys)
    assert code == 1
    jobs = json.loads(out)["scenarios"]
    assert [j["status"] for j in jobs] == ["failed", "failed"]
    assert all(j["note"].startswith(f"cannot start {str(program)!r}: ") for j in jobs), jobs
