"""ModelCheckpoint semantics the way real projects configure it (issue 11), with a real Trainer."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import lit_helpers as H
import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

import sucrose_lightning as sucrose
from sucrose_lightning import SucroseCheckpoint, SucroseWarning
from sucrose_lightning._ckpt_io import SucroseCheckpointIO
from sucrose_lightning.errors import SucroseConfigWarning, SucroseError

pytestmark = pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")


class Worsening(H.TinyModule):
    """``val_loss`` gets worse every epoch: a monitored top-1 keeps the first epoch's file."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", float(self.current_epoch))


@pytest.fixture
def ssc(tmp_path: Path) -> sucrose.SucroseScenario:
    H.quiet()
    return sucrose.SucroseScenario(H.write_workspace(tmp_path / "ws"), "base/case1")


def _trainer(max_epochs: int, callbacks: list, **kw: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


def _fit(ssc, max_epochs, callbacks, module=Worsening, ckpt="auto", **kw):
    pl.seed_everything(0, verbose=False)
    model = ssc.partial(module, "model", lr=ssc["optim.lr"])()
    train, val = H.loaders(ssc, val=True)
    t = _trainer(max_epochs, callbacks, **kw)
    t.fit(model, train, val, ckpt_path=ssc.last_ckpt() if ckpt == "auto" else ckpt)
    return t


def _names(ssc) -> list[str]:
    return sorted(p.name for p in ssc.ckpts_dir.glob("*.ckpt"))


def test_monitored_top1_keeps_a_latest_state_so_resume_never_goes_back(ssc):
    t = _fit(ssc, 3, ssc.callbacks(monitor="val_loss", save_top_k=1))
    assert _names(ssc) == ["base_case1_e1.best.ckpt", "base_case1_e3.best-latest.ckpt"]
    assert t.checkpoint_callback.best_model_path.endswith("base_case1_e1.best.ckpt")
    assert ssc.last_ckpt().endswith("base_case1_e3.best-latest.ckpt")
    t2 = _fit(ssc, 5, ssc.callbacks(monitor="val_loss", save_top_k=1))  # resumes at epoch 3, not 1
    assert t2.global_step == 5 * H.N_BATCHES
    assert _names(ssc) == ["base_case1_e1.best.ckpt", "base_case1_e5.best-latest.ckpt"]
    assert t2.checkpoint_callback.best_model_path.endswith("base_case1_e1.best.ckpt")


def test_keep_last_plus_best_k_never_touch_each_others_files(ssc):
    def callbacks():
        return [*ssc.callbacks(keep_last=2), SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=2)]

    with warnings.catch_warnings():
        warnings.simplefilter("error", SucroseWarning)  # no false "older checkpoint" warning
        _fit(ssc, 2, callbacks())
        _fit(ssc, 4, callbacks())
    assert _names(ssc) == [
        "base_case1_e1.best.ckpt",
        "base_case1_e2.best.ckpt",
        "base_case1_e3.ckpt",
        "base_case1_e4.best-latest.ckpt",
        "base_case1_e4.ckpt",
    ]
    assert not ssc.layout.abandoned_dir.exists()
    assert ssc.store.resume_target(".ckpt").epochs == 4  # type: ignore[union-attr]


def test_two_callbacks_writing_the_same_names_are_refused(ssc):
    with pytest.raises(SucroseError, match=r"would write the same file names.*give one of them a tag"):
        _fit(ssc, 1, [*ssc.callbacks(), SucroseCheckpoint(ssc, every_n_epochs=2)])


def test_scenario_callback_and_logger_pickle(ssc):
    callback = ssc.callbacks(keep_last=2)[0]
    logger = ssc.logger()
    again = pickle.loads(pickle.dumps(ssc))
    assert again["model.hidden"] == 6 and again.ckpts_dir == ssc.ckpts_dir
    assert pickle.loads(pickle.dumps(callback)).keep_last == 2
    assert pickle.loads(pickle.dumps(logger)).log_dir == str(ssc.logs_dir)
    ssc.acquire_lock()
    try:
        assert pickle.loads(pickle.dumps(ssc))._session is None  # a lock stays with its process
    finally:
        ssc.close()


class Spy(pl.Trainer):
    saves: list[str]

    def save_checkpoint(self, filepath: Any, weights_only: bool = False, storage_options: Any = None) -> None:
        self.saves = [*getattr(self, "saves", []), Path(filepath).name]
        super().save_checkpoint(filepath, weights_only, storage_options)


class RecordingIO(TorchCheckpointIO):
    seen: ClassVar[list[str]] = []

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        RecordingIO.seen.append(Path(path).name)
        super().save_checkpoint(checkpoint, path, storage_options)


def test_every_save_goes_through_trainer_and_checkpoint_io(ssc, tmp_path):
    pl.seed_everything(0, verbose=False)
    model = H.make_model(ssc)
    train, _ = H.loaders(ssc)
    spy = Spy(
        accelerator="cpu", max_epochs=2, callbacks=ssc.callbacks(), logger=False, enable_progress_bar=False
    )
    spy.fit(model, train)
    assert spy.saves == ["base_case1_e1.ckpt", "base_case1_e2.ckpt"]
    assert isinstance(spy.strategy.checkpoint_io, SucroseCheckpointIO)  # the default IO, made crash-safe
    own = tmp_path / "mine.ckpt"
    spy.save_checkpoint(own)  # a user's own save is atomic too: no temporary file is left
    assert torch.load(own, weights_only=False)["global_step"] == 2 * H.N_BATCHES
    assert [p.name for p in own.parent.iterdir() if p.name.startswith(".")] == []

    ws2 = sucrose.SucroseScenario(H.write_workspace(tmp_path / "ws2"), "base")
    RecordingIO.seen = []
    _fit(ws2, 2, ws2.callbacks(), module=H.TinyModule, plugins=[RecordingIO()])
    assert RecordingIO.seen == ["base_e1.ckpt", "base_e2.ckpt"]  # a user's plugin sees every save


def test_weights_only_files_are_never_a_resume_point(ssc):
    _fit(ssc, 2, ssc.callbacks(save_weights_only=True), module=H.TinyModule)
    assert _names(ssc) == ["base_case1_e1.weights.ckpt", "base_case1_e2.weights.ckpt"]
    assert ssc.last_ckpt() is None
    with pytest.raises(SucroseError, match=r"holds the weights only .*ssc\.last_ckpt\(\)"):
        _fit(ssc, 3, ssc.callbacks(), module=H.TinyModule, ckpt=ssc.ckpts()[-1].path)


def test_switching_from_stock_model_checkpoint_keeps_best_k_and_warns_once(ssc, tmp_path):
    stock = ModelCheckpoint(dirpath=tmp_path / "stock", monitor="val_loss", save_top_k=2)
    _fit(ssc, 2, [stock])
    state = {k: v for k, v in stock.state_dict().items() if k in ("best_model_path", "best_k_models")}
    with pytest.warns(SucroseWarning, match="not written by sucrose") as seen:
        t = _fit(
            ssc,
            3,
            [*ssc.callbacks(monitor="val_loss", save_top_k=2), SucroseCheckpoint(ssc, tag="all")],
            ckpt=str(tmp_path / "stock" / "epoch=1-step=8.ckpt"),
        )
    assert sum("not written by sucrose" in str(w.message) for w in seen) == 1
    ours = t.checkpoint_callback
    assert ours.best_model_path == state["best_model_path"]
    assert set(ours.best_k_models) == set(state["best_k_models"])
    assert ours.best_model_score == stock.best_model_score
    assert sorted(p.name for p in (tmp_path / "stock").iterdir()) == [
        "epoch=0-step=4.ckpt",
        "epoch=1-step=8.ckpt",
    ]


def test_ckpt_path_last_resumes_from_the_most_advanced_checkpoint(ssc):
    _fit(ssc, 2, ssc.callbacks(), module=H.TinyModule)
    t = _fit(ssc, 3, ssc.callbacks(), module=H.TinyModule, ckpt="last")  # no save_last=True
    assert t.global_step == 3 * H.N_BATCHES


def test_drift_warning_points_at_the_users_fit_line_and_names_the_lr_rule(tmp_path):
    H.quiet()
    ws = H.write_workspace(tmp_path / "ws")
    _fit(
        sucrose.SucroseScenario(ws, "base"), 1, sucrose.SucroseScenario(ws, "base").callbacks(), H.TinyModule
    )
    (ws / "config.yaml").write_text(H.CONFIG.replace("optim.lr: 0.1", "optim.lr: 0.05"))
    ssc = sucrose.SucroseScenario(ws, "base")
    with pytest.warns(SucroseConfigWarning, match=r"(?s)optim\.lr: 0\.1 -> 0\.05.*set them again") as seen:
        _fit(ssc, 2, ssc.callbacks(), H.TinyModule)
    drift = [w for w in seen if "config differs" in str(w.message)]
    assert len(drift) == 1 and drift[0].filename == __file__


def test_validate_only_run_says_evaluating(ssc):
    _fit(ssc, 1, ssc.callbacks(), module=H.TinyModule)
    (ssc.workspace / "config.yaml").write_text(
        H.CONFIG.replace("model.hidden: 6", "model.hidden: 6\n  extra: 1")
    )
    again = sucrose.SucroseScenario(ssc.workspace, "base/case1")
    model = H.make_model(again)
    _, val = H.loaders(again, val=True)
    with pytest.warns(SucroseConfigWarning, match="evaluating scenario 'base/case1'"):
        _trainer(1, again.callbacks()).validate(model, val, ckpt_path=again.last_ckpt(), verbose=False)


def test_ddp_spawn_per_rank_random_states_resume_bitwise(tmp_path):
    """2 gloo processes by ddp_spawn (so everything is pickled), dropout with per-rank seeds:
    2 + 2 epochs equal 4 straight, bit for bit."""
    script = Path(H.__file__).resolve()
    outs = []
    for name, plan in (("straight", "4"), ("resumed", "2,4")):
        ws = H.write_workspace(tmp_path / name)
        out = tmp_path / f"{name}.pt"
        proc = subprocess.run(
            [sys.executable, str(script), "spawn", str(ws), plan, str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs.append(torch.load(out))
    (a, b) = outs
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
