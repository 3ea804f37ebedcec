"""SucroseCLI in real subprocesses: fresh, resumed, refused, typed, and SIGKILLed then resumed."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jsonargparse")

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import sucrose_lightning as sucrose
from sucrose_lightning.lightning import SucroseCheckpoint

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SCRIPT = Path(__file__).with_name("cli_train_script.py")
REPO = Path(__file__).resolve().parent.parent
CONFIG = """\
base:
  model.in_dim: 4
  model.hidden_dim: 8
  data.in_dim: ${model.in_dim}
  data.n: 32
base/case1:
  model.hidden_dim: 6
"""


def _workspace(root: Path, text: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(text)
    shutil.copy(SCRIPT, root / "train.py")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def _train(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "train.py", "fit", "--seed_everything", "7", *args]
    return subprocess.run(cmd, cwd=ws, env=_env(**env), capture_output=True, text=True, timeout=300)


def _epochs(ws: Path, name: str) -> list[int]:
    return [c.epochs for c in sucrose.SucroseScenario(ws, name).ckpts()]


def test_signature_lists_model_checkpoint_options() -> None:
    ours = inspect.signature(SucroseCheckpoint).parameters
    stock = inspect.signature(ModelCheckpoint).parameters
    assert set(stock) - set(ours) == {"dirpath", "filename", "enable_version_counter"}
    assert all(ours[n].kind is inspect.Parameter.KEYWORD_ONLY for n in stock if n in ours)


def test_fresh_then_resumed_then_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    first = _train(ws, "--scenario", "base/case1", "--trainer.max_epochs", "2", "--checkpoint.keep_last", "5")
    assert first.returncode == 0, first.stderr
    assert _epochs(ws, "base/case1") == [1, 2]
    second = _train(
        ws, "--scenario", "base/case1", "--trainer.max_epochs", "3", "--checkpoint.keep_last", "2"
    )
    assert second.returncode == 0, second.stderr
    assert "Restored all states from the checkpoint at" in second.stderr + second.stdout
    assert _epochs(ws, "base/case1") == [2, 3]  # --checkpoint.keep_last reached the callback
    saved = sorted((ws / "logs/base/case1").glob("lightning-config.fit.*.yaml"))
    assert len(saved) == 2  # one per run, never in the way of the next
    assert "scenario: base/case1" in saved[-1].read_text()
    ckpt = torch.load(sucrose.SucroseScenario(ws, "base/case1").last_ckpt(), weights_only=False)
    assert ckpt["hyper_parameters"]["hidden_dim"] == 6
    assert ckpt["sucrose"]["config"]["data.in_dim"] == 4  # the record holds resolved values

    changed = _train(ws, "--scenario", "base/case1", "--trainer.max_epochs", "4", "--model.hidden_dim", "128")
    assert changed.returncode == 2
    assert "model.hidden_dim: 128 instead of 6 (" in changed.stderr
    assert "base/case1/hidden_dim_128:\n    model.hidden_dim: 128" in changed.stderr
    assert "python train.py fit --scenario base/case1/hidden_dim_128" in changed.stderr
    assert _epochs(ws, "base/case1") == [2, 3]


def test_help_shows_the_scenario_values_and_the_checkpoint_options(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    cmd = [sys.executable, "train.py", "fit", "--scenario", "base/case1", "--help"]
    proc = subprocess.run(cmd, cwd=ws, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "--model.hidden_dim HIDDEN_DIM (required, type: int, default: 6)" in text
    assert "--data.in_dim IN_DIM (required, type: int, default: 4)" in text  # from ${model.in_dim}
    for option in ("--checkpoint.keep_last", "--checkpoint.monitor", "--checkpoint.every_n_train_steps"):
        assert option in text
    missing = subprocess.run(
        [sys.executable, "train.py", "fit"], cwd=ws, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 2
    assert "sucrose: fit: name the scenario on the command line: --scenario NAME" in missing.stderr


def test_ddp_on_two_cpu_processes_resumes(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    ddp = ("--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    for epochs in ("1", "2"):
        proc = _train(ws, "--scenario", "base", "--trainer.max_epochs", epochs, *ddp)
        assert proc.returncode == 0, proc.stderr
    assert _epochs(ws, "base") == [1, 2]
    assert len(list((ws / "logs/base").glob("lightning-config.fit.*.yaml"))) == 2


def test_every_type_error_before_anything_is_built(tmp_path: Path) -> None:
    text = CONFIG + "base/bad:\n  model.hidden_dim: '6'\n  model.lr: 1e-3\n  data.n: 3.5\n"
    ws = _workspace(tmp_path / "ws", text)
    proc = _train(ws, "--scenario", "base/bad", "--trainer.max_epochs", "1")
    assert proc.returncode == 2
    for key in ("model.hidden_dim", "model.lr", "data.n"):
        assert f"key '{key}' (set in domain 'base/bad')" in proc.stderr, proc.stderr
    assert "3 problems in" in proc.stderr and "YAML 1.1 reads 1e-3 as a string" in proc.stderr
    assert not (ws / "ckpts").exists() and not (ws / "logs").exists()


def _run_until_marker(ws: Path, step: int, *args: str) -> None:
    cmd = [sys.executable, "train.py", "fit", "--seed_everything", "7", *args]
    env = _env(SUCROSE_TEST_KILL_AT=str(step))
    with subprocess.Popen(
        cmd,
        cwd=ws,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(f"KILL-ME {step}"):
                proc.send_signal(signal.SIGKILL)
                break
        assert proc.wait(120) == -signal.SIGKILL, "the child ended before its kill point"


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ("--scenario", "base", "--trainer.max_epochs", "3")
    ref = _workspace(tmp_path / "ref")
    assert _train(ref, *args).returncode == 0
    ws = _workspace(tmp_path / "killed")
    _run_until_marker(ws, 6, *args)  # half-way through the second epoch (4 batches an epoch)
    assert _epochs(ws, "base") == [1]
    again = _train(ws, *args)
    assert again.returncode == 0, again.stderr
    assert _epochs(ws, "base") == [1, 2, 3]
    a = torch.load(sucrose.SucroseScenario(ref, "base").last_ckpt(), weights_only=False)
    b = torch.load(sucrose.SucroseScenario(ws, "base").last_ckpt(), weights_only=False)
    assert a["global_step"] == b["global_step"] == 12
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


class Act(enum.Enum):
    RELU = "relu"
    GELU = "gelu"


@dataclasses.dataclass
class Enc:
    dim: int
    act: Act = Act.RELU


class Typed(pl.LightningModule):
    def __init__(self, root: Path, act: Act, layers: list[int], enc: Enc, w: dict[str, float]) -> None:
        super().__init__()
        self.got = (root, act, layers, enc, w)


def test_converted_values_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    text = "base:\n  model.root: data/x\n  model.act: gelu\n  model.layers: [1, 2]\n  model.enc.dim: 3\n"
    (ws / "config.yaml").write_text(text + "  model.enc.act: gelu\n  model.w: {a: 1}\n")
    monkeypatch.setattr(sys, "argv", ["train.py"])
    cli = sucrose.SucroseCLI(Typed, args=["--scenario", "base", "--workspace", str(ws)], run=False)
    assert cli.model.got == (Path("data/x"), Act.GELU, [1, 2], Enc(3, Act.GELU), {"a": 1.0})
