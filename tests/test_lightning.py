"""The Lightning side with a real Trainer: stamped files, resume, logger, hparams, failures."""

from __future__ import annotations

import errno
import os
import runpy
import shutil
import sys
from pathlib import Path

import lit_helpers as H
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

import sucrose_lightning as sucrose
from sucrose_lightning import _atomic, _lock
from sucrose_lightning.errors import (
    CheckpointError,
    LockError,
    SucroseConfigWarning,
    SucroseError,
    SucroseWarning,
)
from sucrose_lightning.lightning import SucroseCheckpoint, config_diff

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings("ignore:.*you defined a `validation_step`.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),
    pytest.mark.filterwarnings("ignore:.*never read during fit.*"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval.*"),
    pytest.mark.filterwarnings("ignore:.*dataloader is not resumable.*"),
    pytest.mark.filterwarnings("ignore:.*that TinyModule does not take.*"),
]

H.quiet()


@pytest.fixture
def ssc(tmp_path: Path) -> sucrose.SucroseScenario:
    scenario = sucrose.scenario(H.write_workspace(tmp_path / "ws"), "base/case1")
    yield scenario
    scenario.close()


def names(ssc: sucrose.SucroseScenario) -> list[str]:
    return [Path(c.path).name for c in ssc.ckpts()]


def load(path: str) -> dict:
    return torch.load(path, weights_only=False, map_location="cpu")


def test_fresh_fit_writes_stamped_files_with_scenario_record(ssc):
    assert ssc.last_ckpt() is None
    t, _ = H.fit(ssc, 2)
    assert names(ssc) == ["base_case1_e1.ckpt", "base_case1_e2.ckpt"]
    assert sorted(os.listdir(ssc.ckpts_dir)) == [
        ".sucrose.lock",
        ".sucrose.runs.jsonl",  # the run history (docs/cluster.md)
        "base_case1_e1.ckpt",
        "base_case1_e2.ckpt",
    ]
    assert ssc.last_ckpt() == str(ssc.ckpts_dir / "base_case1_e2.ckpt")
    assert isinstance(t.checkpoint_callback, ModelCheckpoint)
    assert t.checkpoint_callback.best_model_path == ssc.last_ckpt()
    ck = load(ssc.last_ckpt())
    meta = ck["sucrose"]
    assert (meta["scenario"], meta["epochs"], meta["step"]) == ("base/case1", 2, 8)
    assert meta["config"] == ssc.hparams() and meta["config"]["model.hidden"] == 6
    assert meta["config_sha256"] == ssc.config_file.sha256
    assert set(meta["rng"]) >= {"python", "torch"}
    assert (ck["epoch"], ck["global_step"]) == (1, 8)
    # weights_only=True reads it too (rng states are tensors, lists and ints)
    assert torch.load(ssc.last_ckpt(), weights_only=True)["sucrose"]["epochs"] == 2


def test_resume_continues_epochs_and_global_step(ssc):
    H.fit(ssc, 2)
    t, _ = H.fit(ssc, 4)
    assert names(ssc) == [f"base_case1_e{i}.ckpt" for i in (1, 2, 3, 4)]
    assert t.global_step == 4 * H.N_BATCHES and t.current_epoch == 4
    assert [load(c.path)["global_step"] for c in ssc.ckpts()] == [4, 8, 12, 16]
    # fitting again to the same max_epochs resumes and does nothing
    t, _ = H.fit(ssc, 4)
    assert t.global_step == 16 and len(ssc.ckpts()) == 4


def test_exact_resume_is_bitwise_equal(tmp_path):
    a = sucrose.SucroseScenario(H.write_workspace(tmp_path / "a"), "base/case1")
    b = sucrose.SucroseScenario(H.write_workspace(tmp_path / "b"), "base/case1")
    H.fit(a, 4, val=True)
    H.fit(b, 2, val=True)
    H.fit(b, 4, val=True, seed=123)  # the seed does not matter: the checkpoint's states win
    assert names(b) == [f"base_case1_e{i}.ckpt" for i in (1, 2, 3, 4)]
    sa, sb = load(a.last_ckpt())["state_dict"], load(b.last_ckpt())["state_dict"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    a.close()
    b.close()


def test_logger_dir_is_the_scenario_folder_across_resumes(tmp_path):
    ws = H.write_workspace(tmp_path / "ws", H.CONFIG + "base/case1/deep:\n  optim.lr: 0.05\n")
    ssc = sucrose.SucroseScenario(ws, "base/case1/deep")
    logger = ssc.logger()
    assert isinstance(logger, TensorBoardLogger)
    assert logger.log_dir == str(ws / "logs" / "base" / "case1" / "deep")
    t1, _ = H.fit(ssc, 1, logger=True)
    t2, _ = H.fit(ssc, 2, logger=True)
    assert t1.logger.log_dir == t2.logger.log_dir == str(ssc.logs_dir)
    assert not list((ws / "logs").rglob("version_*"))
    events = list(ssc.logs_dir.glob("events.out.tfevents.*"))
    assert len(events) == 2  # one per run, same folder: one continuous curve in TensorBoard
    ssc.close()


def test_hparams_in_module_checkpoint_and_yaml(ssc):
    import yaml

    model = H.make_model(ssc)
    assert dict(model.hparams) == {"in_dim": 4, "hidden": 6, "lr": 0.1, "act": "relu"}
    H.fit(ssc, 1, logger=True)
    assert load(ssc.last_ckpt())["hyper_parameters"] == {"in_dim": 4, "hidden": 6, "lr": 0.1, "act": "relu"}
    saved = yaml.safe_load((ssc.logs_dir / "hparams.yaml").read_text())
    assert saved == {**ssc.hparams(), "in_dim": 4, "hidden": 6, "lr": 0.1, "act": "relu"}
    assert ssc.hparams("model") == {"in_dim": 4, "hidden": 6}


def test_hparams_yaml_is_rewritten_on_resume(tmp_path):
    import yaml

    ws = H.write_workspace(tmp_path / "ws")
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    H.fit(ssc, 1, logger=True)
    ssc.close()
    (ws / "config.yaml").write_text(H.CONFIG.replace("optim.lr: 0.1", "optim.lr: 0.05"))
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    with pytest.warns(SucroseConfigWarning):
        H.fit(ssc, 2, logger=True)
    saved = yaml.safe_load((ssc.logs_dir / "hparams.yaml").read_text())
    assert saved["optim.lr"] == 0.05 and saved["lr"] == 0.05
    ssc.close()


def test_changed_config_warns_with_diff_and_strict_refuses(tmp_path):
    ws = H.write_workspace(tmp_path / "ws")
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    H.fit(ssc, 1)
    ssc.close()
    (ws / "config.yaml").write_text(H.CONFIG.replace("optim.lr: 0.1", "optim.lr: 0.05") + "  extra.k: 1\n")
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    with pytest.raises(SucroseError, match=r"optim\.lr: 0\.1 -> 0\.05"):
        H.fit(ssc, 2, strict_config=True)
    assert names(ssc) == ["base_case1_e1.ckpt"]
    assert os.path.realpath(ssc.layout.lock_path) not in _lock.ScenarioLock._held  # released anyway
    with pytest.warns(SucroseConfigWarning) as rec:
        H.fit(ssc, 2)
    text = "\n".join(str(w.message) for w in rec if "differs" in str(w.message))
    assert "optim.lr: 0.1 -> 0.05" in text and "extra.k: (unset) -> 1" in text
    assert names(ssc) == ["base_case1_e1.ckpt", "base_case1_e2.ckpt"]
    ssc.close()


def test_config_diff_lines():
    assert config_diff({"a": 1, "b": [1]}, {"a": 1.5, "b": [1]}) == ["a: 1 -> 1.5"]
    assert config_diff({"a": 1}, {"a": True}) == ["a: 1 -> True"]
    nan = float("nan")
    assert config_diff({"x": nan, "l": [1.0, nan]}, {"x": nan, "l": [1.0, nan]}) == []


def test_hparams_yaml_written_once_per_change_not_per_log(tmp_path, monkeypatch):
    import lightning.pytorch.core.saving as saving

    calls = []
    real = saving.save_hparams_to_yaml
    monkeypatch.setattr(saving, "save_hparams_to_yaml", lambda *a, **k: calls.append(a) or real(*a, **k))
    ws = H.write_workspace(tmp_path / "ws")
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    t, _ = H.fit(ssc, 2, logger=True)  # log_every_n_steps=1: Lightning calls logger.save() every step
    ssc.close()
    assert t.global_step >= 4
    assert 1 <= len(calls) <= 2, len(calls)
    assert (ssc.logs_dir / "hparams.yaml").is_file()


def test_monitor_top_k_best_and_last(ssc):
    t, _ = H.fit(ssc, 4, val=True, monitor="val_loss", save_top_k=2, save_last=True)
    cb = t.checkpoint_callback
    assert isinstance(cb, SucroseCheckpoint)
    assert len(ssc.ckpts()) == 2
    assert set(cb.best_k_models) == {c.path for c in ssc.ckpts()}
    assert cb.best_model_path == min(cb.best_k_models, key=lambda p: cb.best_k_models[p].item())
    assert (ssc.ckpts_dir / "last.ckpt").is_file()
    assert "last.ckpt" not in names(ssc) and ssc.last_ckpt() != str(ssc.ckpts_dir / "last.ckpt")
    assert load(str(ssc.ckpts_dir / "last.ckpt"))["global_step"] == 16
    res = t.validate(ckpt_path="best", dataloaders=H.loaders(ssc, val=True)[1], verbose=False)
    assert res and "val_loss" in res[0]


def test_keep_last_keeps_newest(ssc):
    H.fit(ssc, 4, keep_last=2)
    assert names(ssc) == ["base_case1_e3.ckpt", "base_case1_e4.ckpt"]


def test_every_n_epochs(ssc):
    H.fit(ssc, 4, every_n_epochs=2)
    assert names(ssc) == ["base_case1_e2.ckpt", "base_case1_e4.ckpt"]


def test_mid_epoch_saves_carry_the_global_step(ssc):
    # 4 batches per epoch; a save every 2 steps also fires on each epoch's last batch,
    # before Lightning counts that epoch: it is stamped with the epochs finished before it.
    H.fit(ssc, 2, every_n_train_steps=2)
    assert names(ssc) == [
        "base_case1_e0_s2.ckpt",
        "base_case1_e0_s4.ckpt",
        "base_case1_e1_s6.ckpt",
        "base_case1_e1_s8.ckpt",
    ]
    assert ssc.last_ckpt().endswith("base_case1_e1_s8.ckpt")
    t, _ = H.fit(ssc, 3, every_n_train_steps=2)  # resumes from the epoch's last batch
    assert t.global_step == 12
    assert names(ssc)[-2:] == ["base_case1_e2_s10.ckpt", "base_case1_e2_s12.ckpt"]


def test_resume_from_a_mid_epoch_checkpoint(ssc):
    H.fit(ssc, 2, every_n_train_steps=3)
    assert names(ssc) == ["base_case1_e0_s3.ckpt", "base_case1_e1_s6.ckpt"]
    t, _ = H.fit(ssc, 2, every_n_train_steps=3)
    assert t.global_step == 8 and t.current_epoch == 2


def test_resume_from_older_checkpoint_moves_newer_aside_never_v1(ssc):
    H.fit(ssc, 3)
    first = ssc.ckpts()[0].path
    with pytest.warns(SucroseWarning, match="moved 2 newer checkpoint"):
        H.fit(ssc, 3, ckpt=first)
    assert names(ssc) == ["base_case1_e1.ckpt", "base_case1_e2.ckpt", "base_case1_e3.ckpt"]
    aside = sorted(p.name for p in (ssc.ckpts_dir / ".abandoned").iterdir())
    assert aside == ["base_case1_e2.ckpt", "base_case1_e3.ckpt"]
    assert not [p for p in ssc.ckpts_dir.rglob("*") if "-v" in p.name]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_failed_write_raises_naming_the_path_and_keeps_old(ssc, monkeypatch, code):
    H.fit(ssc, 1)
    before = Path(ssc.last_ckpt()).read_bytes()

    def fail(obj, stream):
        stream.write(b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_atomic, "_serialize", fail)
    target = ssc.ckpts_dir / "base_case1_e2.ckpt"
    with pytest.raises(CheckpointError, match=str(target).replace(".", r"\.")):
        H.fit(ssc, 2)
    monkeypatch.undo()
    assert str(ssc.layout.lock_path) not in _lock.ScenarioLock._held
    assert names(ssc) == ["base_case1_e1.ckpt"]
    assert Path(ssc.last_ckpt()).read_bytes() == before
    assert not list(ssc.layout.temp_files())


def test_truncated_newest_falls_back_with_warning(ssc):
    H.fit(ssc, 2)
    newest = Path(ssc.last_ckpt())
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(SucroseWarning, match="base_case1_e2.ckpt"):
        assert ssc.last_ckpt() == str(ssc.ckpts_dir / "base_case1_e1.ckpt")
    with pytest.warns(SucroseWarning):
        t, _ = H.fit(ssc, 2)
    assert t.global_step == 8 and _atomic.check_file(ssc.last_ckpt()) is None


def test_leftover_temp_files_ignored_and_cleaned(ssc):
    ssc.ckpts_dir.mkdir(parents=True)
    tmp = ssc.ckpts_dir / ".base_case1_e9.ckpt.999.1.tmp"
    tmp.write_bytes(b"junk")
    assert ssc.ckpts() == [] and ssc.last_ckpt() is None
    H.fit(ssc, 1)
    assert not tmp.exists() and names(ssc) == ["base_case1_e1.ckpt"]


def test_second_process_resumes_and_a_concurrent_one_is_refused(ssc, tmp_path):
    ctx = H.forkserver()
    child = ctx.Process(target=H.child_train, args=(str(ssc.workspace), ssc.name, 1, str(tmp_path / "j")))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    t, _ = H.fit(ssc, 2)  # this process resumes what the other one wrote
    assert t.global_step == 8 and names(ssc) == ["base_case1_e1.ckpt", "base_case1_e2.ckpt"]

    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=H.child_hold_lock, args=(str(ssc.workspace), ssc.name, ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            H.fit(ssc, 3)
    finally:
        done.set()
        holder.join(30)
    assert names(ssc)[-1] == "base_case1_e2.ckpt"


def test_unused_keys_warned_once_at_end_of_fit(tmp_path):
    ws = H.write_workspace(tmp_path / "ws", H.CONFIG + "  model.hiden: 3\n")
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    with pytest.warns(SucroseConfigWarning, match="never read") as rec:
        H.fit(ssc, 1)
    unused = [w for w in rec if "never read" in str(w.message)]
    assert len(unused) == 1 and "model.hiden" in str(unused[0].message)
    ssc.close()


def test_fixed_and_conflicting_options_are_refused(ssc):
    with pytest.raises(SucroseError, match="dirpath"):
        ssc.callbacks(dirpath="/elsewhere")
    with pytest.raises(SucroseError, match="keep_last"):
        ssc.callbacks(keep_last=2, monitor="val_loss")
    with pytest.raises(SucroseError, match="version"):
        ssc.logger(version="v2")


def test_example_trains_and_resumes(tmp_path, monkeypatch, capsys):
    example = Path(__file__).parents[1] / "examples" / "lightning"
    shutil.copy(example / "config.yaml", tmp_path / "config.yaml")
    for _ in range(2):
        monkeypatch.setattr(sys, "argv", ["train.py", "base/wide", "--workspace", str(tmp_path)])
        runpy.run_path(str(example / "train.py"), run_name="__main__")
    out = capsys.readouterr().out
    ssc = sucrose.SucroseScenario(tmp_path, "base/wide")
    assert len(ssc.ckpts()) >= 2 and "resuming from" in out
    assert ssc.ckpts()[-1].epochs == 2 * ssc["train.epochs"]


def test_saves_bypass_lightnings_buffering_checkpoint_io(ssc, monkeypatch):
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    def buffered(*args, **kwargs):
        raise AssertionError("TorchCheckpointIO.save_checkpoint (in-memory buffer) was used")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", buffered)
    streamed = []
    real = _atomic.atomic_save
    monkeypatch.setattr(
        _atomic, "atomic_save", lambda obj, final: (streamed.append(final.name), real(obj, final))
    )
    H.fit(ssc, 2, save_last=True)
    assert streamed == ["base_case1_e1.ckpt", "last.ckpt", "base_case1_e2.ckpt", "last.ckpt"]
