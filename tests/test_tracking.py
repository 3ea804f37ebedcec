"""Trackers that follow the scenario, with the real backends read back by their own readers.

TensorBoard through its event reader and its hparams plugin data, CSV as a file, MLflow through
``MlflowClient`` on a SQLite store in ``tmp_path``, W&B offline (run folders). The kill tests
train in a forked child, wait for the marker file it writes once it is past a checkpoint and
has flushed its loggers, SIGKILL it, and resume in a new child with a changed config.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import sys
import time
from multiprocessing.connection import wait
from pathlib import Path

import lit_helpers as H
import pytest
import tracking_child
import yaml
from child_procs import preloaded_forkserver
from tensorboard.backend.event_processing import event_accumulator, plugin_event_multiplexer
from tensorboard.plugins.hparams import metadata as hp_metadata

import sucrose_lightning as sucrose
from sucrose_lightning import _runids
from sucrose_lightning._tracking import umask
from sucrose_lightning.errors import LockError, SucroseError
from sucrose_lightning.loggers import HPARAMS_EVENTS

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

BATCHES = H.N_BATCHES  # 4 per epoch: base_e1.ckpt is at global step 4
KILL_STEP = 7  # killed 3 steps past the first checkpoint, having logged steps 0..5 (4, 5: ghosts)
LR2 = "optim.lr: 0.05"


def _ctx(*extra: str):
    return preloaded_forkserver([*tracking_child.PRELOAD, *extra])


def _child(
    ctx, ws: Path, kinds: list[str], env: dict[str, str], *, epochs: int = 2, kill: bool = False
) -> None:
    """Run one training child; with ``kill``, SIGKILL it once it wrote its marker (past ``KILL_STEP``)."""
    marker = ws / f"marker.{time.monotonic_ns()}"
    args = (str(ws), "base", kinds, epochs, env, KILL_STEP if kill else None, str(marker))
    proc = ctx.Process(target=tracking_child.train, args=args)
    proc.start()
    if kill:
        while not marker.exists() and proc.is_alive():
            wait([proc.sentinel], timeout=0.05)
        assert marker.exists(), f"the child died before its marker (exit code {proc.exitcode})"
        proc.kill()
    proc.join(180)
    assert proc.exitcode == (-9 if kill else 0), proc.exitcode


def _kill_and_resume(ctx, ws: Path, kinds: list[str], env: dict[str, str] | None = None) -> float:
    """Train, get killed past e1, change ``optim.lr``, resume to 2 epochs; returns the resume's start time."""
    _child(ctx, ws, kinds, env or {}, kill=True)
    config = ws / "config.yaml"
    config.write_text(config.read_text().replace("optim.lr: 0.1", LR2))
    started = time.time()
    _child(ctx, ws, kinds, env or {})
    return started


def _scalars(folder: Path, tag: str) -> list[tuple[int, float, float]]:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]


def _session_hparams(logs: Path) -> dict[str, dict[str, object]]:
    """Per run, the hparams of its session as TensorBoard's hparams plugin data gives them."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logs))
    mux.Reload()
    out = {}
    for run, tags in mux.PluginRunToTagToContent(hp_metadata.PLUGIN_NAME).items():
        info = hp_metadata.parse_session_start_info_plugin_data(tags[hp_metadata.SESSION_START_INFO_TAG])
        out[run] = {
            k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()
        }
    return out


# --------------------------------------------------------------------------- TensorBoard and CSV


def test_tensorboard_and_csv_kill_resume_no_ghosts_latest_hparams(tmp_path):
    ws = H.write_workspace(tmp_path / "ws")
    started = _kill_and_resume(_ctx(), ws, ["tensorboard", "csv"])
    logs = ws / "logs" / "base"

    points = _scalars(logs, "train_loss")
    assert [s for s, _, _ in points] == list(range(2 * BATCHES))  # every step once, no ghost
    assert all((t >= started) == (s >= BATCHES) for s, t, _ in points)  # >= e1's step: the resumed run's

    with open(logs / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_loss")]
    assert [int(r["step"]) for r in rows] == list(range(2 * BATCHES))
    by_step = {s: v for s, _, v in points}
    assert all(abs(float(r["train_loss"]) - by_step[int(r["step"])]) < 1e-6 for r in rows)

    sessions = _session_hparams(ws / "logs")
    assert list(sessions) == ["base"]  # one run, one session
    assert sessions["base"]["optim.lr"] == 0.05 and sessions["base"]["hidden"] == 8
    saved = yaml.safe_load((logs / "hparams.yaml").read_text())
    assert saved["optim.lr"] == 0.05
    mode = 0o666 & ~umask()
    for name in ("hparams.yaml", HPARAMS_EVENTS, "metrics.csv"):
        assert stat.S_IMODE((logs / name).stat().st_mode) == mode, name
    assert not list(logs.glob(".*"))  # no temporary file left


def test_a_refused_or_idle_run_writes_no_log_file(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    kinds = ["tensorboard", "csv", "mlflow"]

    def mlflow_runs() -> list[str]:
        client = mlflow.MlflowClient(uri)
        return [
            r.info.run_id for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
        ]

    ws = H.write_workspace(tmp_path / "ws")
    ctx = H.forkserver()
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=H.child_hold_lock, args=(str(ws), "base", ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        ssc = sucrose.scenario(ws, "base")
        with pytest.raises(LockError):
            _fit_with(ssc, 1, kinds)
        assert not (ws / "logs").exists()
        assert mlflow_runs() == []
    finally:
        done.set()
        holder.join(30)
    ssc = sucrose.scenario(ws, "base")
    _fit_with(ssc, 1, kinds)
    before = {p.name: p.stat().st_mtime_ns for p in ssc.logs_dir.iterdir()}
    runs = mlflow_runs()
    assert len(runs) == 1
    _fit_with(ssc, 1, kinds)  # nothing left to train
    assert {p.name: p.stat().st_mtime_ns for p in ssc.logs_dir.iterdir()} == before
    assert mlflow_runs() == runs


def _fit_with(ssc, epochs: int, kinds: list[str]):
    import lightning.pytorch as pl

    H.quiet()
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        callbacks=ssc.callbacks(warn_unused=False),
        logger=ssc.logger(kinds),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(H.make_model(ssc), H.loaders(ssc)[0], ckpt_path=ssc.last_ckpt())
    return trainer


def test_logger_kinds_and_their_errors(tmp_path, monkeypatch):
    ws = H.write_workspace(tmp_path / "ws")
    ssc = sucrose.scenario(ws, "base/case1")
    assert type(ssc.logger()).__name__ == "SucroseLogger"
    csv_logger = ssc.logger("csv")
    assert csv_logger.log_dir == str(ssc.logs_dir)
    with pytest.raises(SucroseError, match=r"unknown logger kind 'tensorbord'.*did you mean 'tensorboard'"):
        ssc.logger("tensorbord")
    with pytest.raises(SucroseError, match=r"give each one's options under its name.*prefix="):
        ssc.logger(["tensorboard", "csv"], prefix="x")
    with pytest.raises(SucroseError, match="names a backend twice"):
        ssc.logger(["csv", "csv"])
    with pytest.raises(SucroseError, match=r"csv logger of scenario 'base/case1' decides version="):
        ssc.logger("csv", version="v2")
    both = ssc.logger(["tensorboard", "csv"], csv={"prefix": "p"})
    assert both[1]._prefix == "p"
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(SucroseError, match=r"install it with: pip install 'sucrose-lightning\[mlflow\]'$"):
        ssc.logger("mlflow")
    with pytest.raises(SucroseError, match=r"pip install 'sucrose-lightning\[wandb\]'$"):
        ssc.logger(["tensorboard", "wandb"])


def test_a_fresh_fit_starts_the_curves_over(tmp_path):
    """A run from no checkpoint (the first attempt died before any) supersedes every old point."""
    ws = H.write_workspace(tmp_path / "ws")
    ssc = sucrose.scenario(ws, "base")
    _fit_with(ssc, 1, ["tensorboard", "csv"])
    for path in ssc.ckpts_dir.glob("*.ckpt"):
        path.unlink()
    started = time.time()
    _fit_with(sucrose.scenario(ws, "base"), 1, ["tensorboard", "csv"])
    points = _scalars(ssc.logs_dir, "train_loss")
    assert [s for s, _, _ in points] == list(range(BATCHES)) and all(t >= started for _, t, _ in points)
    assert len((ssc.logs_dir / "metrics.csv").read_text().splitlines()) == 1 + BATCHES
    assert list(_session_hparams(ws / "logs")) == ["base"]


# --------------------------------------------------------------------------- MLflow


def test_mlflow_one_run_per_scenario_across_kill_and_resume(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    ws = H.write_workspace(tmp_path / "ws")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri}
    started = _kill_and_resume(_ctx("mlflow"), ws, ["mlflow"], env)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ws")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["base"]  # one run for the scenario
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert _runids.read_run(ws / "ckpts" / "base", "mlflow")["run_id"] == run.info.run_id
    assert run.data.params["model.hidden"] == "8" and run.data.params["hidden"] == "8"
    # MLflow keeps a param's first value; the changed key is a tag with the latest one
    assert run.data.params["optim.lr"] == "0.1"
    assert run.data.tags["config.optim.lr"] == "0.05"
    assert run.data.tags["sucrose.config_changed"] == "lr, optim.lr"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    steps = sorted(m.step for m in history)
    # no point can be deleted: the dead run's steps 4, 5 stay next to the resumed run's
    assert steps == sorted([*range(2 * BATCHES), *range(BATCHES, KILL_STEP - 1)])
    newest = {}
    for m in sorted(history, key=lambda m: m.timestamp):
        newest[m.step] = m
    assert all((m.timestamp >= started * 1000 - 1) == (s >= BATCHES) for s, m in newest.items())


# --------------------------------------------------------------------------- W&B


def test_wandb_offline_same_run_id_across_kill_and_resume(tmp_path):
    pytest.importorskip("wandb")
    ws = H.write_workspace(tmp_path / "ws")
    wandb_dir = tmp_path / "wandb_dir"
    wandb_dir.mkdir()
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"}
    _kill_and_resume(_ctx("wandb"), ws, ["wandb"], env)

    run_id = _runids.read_run(ws / "ckpts" / "base", "wandb")["id"]
    folders = sorted(p.name for p in (wandb_dir / "wandb").glob("offline-run-*"))
    # W&B names a run's folder offline-run-<time>-<id>, adding -1 when a run of that id already has a
    # folder of the same second (the resumed process can start within the second of the killed one)
    named = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?")
    assert len(folders) == 2 and all(named.fullmatch(name) for name in folders), folders
    run, config = _wandb_run(next((wandb_dir / "wandb" / folders[-1]).glob("*.wandb")))
    assert (run.run_id, run.display_name, run.run_group) == (run_id, "base", "base")
    assert config["optim.lr"] == 0.05 and config["hidden"] == 8  # the resumed run's config


def _wandb_run(path: Path) -> tuple[object, dict[str, object]]:
    """The run record and the final config of a W&B offline run file (W&B's own protobuf records).

    The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks (crc32, length,
    type: 1 full, 2 first, 3 middle, 4 last), each record a ``wandb_internal_pb2.Record``.
    """
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, buf = path.read_bytes(), 7, b""
    run, config = None, {}
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind not in (1, 4):
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(buf)
        which = record.WhichOneof("record_type")
        if which == "run":
            run = record.run
            updates = record.run.config.update
        elif which == "config":
            updates = record.config.update
        else:
            continue
        config.update({item.key: json.loads(item.value_json) for item in updates})
    return run, config


# --------------------------------------------------------------------------- plain loop


def test_plain_loop_tensorboard_purges_from_the_loaded_step(tmp_path):
    import torch

    ws = H.write_workspace(tmp_path / "ws")

    def run(epochs: int, die_after: int | None = None) -> None:
        ssc = sucrose.scenario(ws, "base")
        model = torch.nn.Linear(2, 1)
        ssc.load_state_dict(model=model)
        writer = ssc.start_pytorch_tensorboard()
        for epoch in ssc.epoch_range(epochs):
            for _ in range(BATCHES):
                writer.add_scalar("loss", float(epoch), ssc.num_steps)
                ssc.step()
                if die_after is not None and ssc.num_steps == die_after:
                    writer.close()  # what a killed run leaves: its points past the last checkpoint
                    ssc.close()
                    return
            ssc.save_state_dict(1, model=model)
        writer.close()
        ssc.close()

    run(2, die_after=BATCHES + 2)  # saved e1 (step 4), logged steps 0..5
    run(1)
    points = _scalars(ws / "logs" / "base", "loss")
    assert [s for s, _, _ in points] == list(range(2 * BATCHES))
    ssc = sucrose.scenario(ws, "base")
    with pytest.raises(SucroseError, match="load_state_dict"):
        ssc.start_pytorch_tensorboard()  # checkpoints exist but nothing was loaded
    assert os.listdir(ws / "logs" / "base")
