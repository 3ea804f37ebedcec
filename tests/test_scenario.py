"""The seed's plain-PyTorch loop, sentence by sentence, on real files."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest
import torch

import sucrose_lightning as sucrose


class ExampleModule(torch.nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(input_dim, hidden_dim)
        self.l2 = torch.nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


def build(ssc):
    model = ssc.partial(ExampleModule, "model")()
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optim


def train_epoch(ssc, model, optim, steps=3):
    for _ in range(steps):
        optim.zero_grad()
        model(torch.randn(4, ssc["model.input_dim"])).pow(2).mean().backward()
        optim.step()
        sucrose.step()


def test_scenario_is_current_and_layout(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    assert isinstance(ssc, sucrose.SucroseScenario)
    assert sucrose.current() is ssc
    assert ssc.name == "base/case1" and ssc.workspace == seed_ws
    assert ssc.ckpts_dir == seed_ws / "ckpts" / "base" / "case1"
    assert ssc.logs_dir == seed_ws / "logs" / "base" / "case1"
    assert (ssc.num_steps, ssc.last_epoch) == (0, 0)


def test_current_scenario_is_per_thread(seed_ws):
    sucrose.scenario(seed_ws, "base/case1")
    seen = []

    def worker():
        try:
            sucrose.epoch_range(1)
        except sucrose.SucroseError as err:
            seen.append(str(err))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen and "sucrose.scenario(" in seen[0]


def test_load_without_checkpoint_logs_and_returns_empty(seed_ws, caplog):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    model, optim = build(ssc)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="sucrose_lightning"):
        assert ssc.load_state_dict(model=model, optim=optim, loader_kwds={"weights_only": True}) == {}
    assert "starting fresh" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_interval_saves_one_file_every_n_calls_stamped_with_total(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    model, optim = build(ssc)
    written = [ssc.save_state_dict(10, model=model, optim=optim) for _ in range(25)]
    assert [p.name for p in written if p] == ["base_case1_e10.pt", "base_case1_e20.pt"]
    assert ssc.last_epoch == 25
    assert sorted(p.name for p in ssc.ckpts_dir.glob("*.pt")) == ["base_case1_e10.pt", "base_case1_e20.pt"]


def test_full_seed_loop_and_resume(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    model, optim = build(ssc)
    ssc.load_state_dict(model=model, optim=optim, loader_kwds={"weights_only": True})
    writer = ssc.start_pytorch_tensorboard()
    assert list(sucrose.epoch_range(2)) == [0, 1]
    for _epoch in range(2):
        train_epoch(ssc, model, optim)
        writer.add_scalar("loss", 1.0, ssc.num_steps)
        ssc.save_state_dict(1, model=model, optim=optim)
    writer.close()
    assert ssc.num_steps == 6
    assert list(ssc.logs_dir.glob("events.out.tfevents.*"))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    ssc.close()

    again = sucrose.scenario(seed_ws, "base/case1")
    model2, optim2 = build(again)
    rest = again.load_state_dict(model=model2, optim=optim2)
    assert rest == {}
    assert again.num_steps == 6 and again.last_epoch == 2
    assert all(torch.equal(saved[k], v) for k, v in model2.state_dict().items())
    assert optim2.state_dict()["state"][0]["momentum_buffer"] is not None
    assert list(sucrose.epoch_range(3)) == [2, 3, 4]


def test_save_step_false_and_load_step(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.num_steps = 5
    path = ssc.save_state_dict(1, save_step=False, extra=[1, 2])
    assert "step" not in torch.load(path, weights_only=True)
    ssc.num_steps = 9
    assert ssc.load_state_dict() == {"extra": [1, 2]}
    assert ssc.num_steps == 9  # nothing recorded, nothing restored


def test_plain_objects_saved_as_is_and_returned(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    model, _ = build(ssc)
    ssc.step(7)
    ssc.save_state_dict(model=model, best_loss=0.25, history=[1.0, 0.5])
    data = torch.load(ssc.ckpts()[-1].path if ssc.ckpts() else ssc.ckpts(plain_loop=True)[-1].path)
    assert data["step"] == 7 and data["sucrose"]["scenario"] == "base"
    assert data["sucrose"]["config"]["model.input_dim"] == 100
    assert len(data["sucrose"]["config_sha256"]) == 64
    other = sucrose.scenario(seed_ws, "base")
    m2, _ = build(other)
    assert other.load_state_dict(model=m2) == {"best_loss": 0.25, "history": [1.0, 0.5]}
    assert other.num_steps == 7


def test_load_given_epoch_and_missing_epoch(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    for i in range(3):
        ssc.save_state_dict(marker=i)
    assert ssc.load_state_dict(epoch=2) == {"marker": 1}
    assert ssc.last_epoch == 2
    with pytest.raises(sucrose.CheckpointError, match=r"after 7 epochs.*have: \[1, 2, 3\]"):
        ssc.load_state_dict(epoch=7)


def test_missing_entry_and_reserved_keys(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    model, _ = build(ssc)
    ssc.save_state_dict(model=model)
    with pytest.raises(sucrose.CheckpointError, match="no entry 'optim'"):
        ssc.load_state_dict(optim=torch.optim.SGD(model.parameters(), lr=1))
    with pytest.raises(sucrose.SucroseError, match="'step' is reserved"):
        ssc.save_state_dict(step=3)
    with pytest.raises(sucrose.SucroseError, match="positive int"):
        ssc.save_state_dict(0, model=model)


def test_num_steps_is_int_only(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.num_steps = 3
    assert sucrose.step() == 4 and ssc.step(2) == 6
    for bad in (1.5, "3", -1, True):
        with pytest.raises(sucrose.SucroseError):
            ssc.num_steps = bad


def test_scan_uses_exact_prefix_and_extension(seed_ws):
    base = sucrose.scenario(seed_ws, "base")
    child = sucrose.scenario(seed_ws, "base/case1")
    base.save_state_dict(x=1)
    child.save_state_dict(x=2)
    child.save_state_dict(x=3)
    folder = base.ckpts_dir
    for junk in ("base_e10.pt.tmp", "base_e10_old.pt", "notes.txt", "base_e07.pt", "base_case1_e9.pt"):
        (folder / junk).write_bytes(b"junk")
    assert [(c.epochs, Path(c.path).name) for c in base.ckpts(plain_loop=True)] == [(1, "base_e1.pt")]
    fresh = sucrose.scenario(seed_ws, "base")
    assert fresh.last_epoch == 1
    assert sucrose.scenario(seed_ws, "base/case1").last_epoch == 2


def test_logger_never_prints(seed_ws, capsys):
    sucrose.logger.setLevel("DEBUG")
    try:
        ssc = sucrose.scenario(seed_ws, "base")
        ssc.load_state_dict()
        ssc.save_state_dict(x=1)
        ssc.load_state_dict()
    finally:
        sucrose.logger.setLevel(logging.NOTSET)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_tensorboard_writer_goes_to_logs_dir(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    writer = ssc.start_pytorch_tensorboard(flush_secs=1)
    writer.add_scalar("a", 1.0, 0)
    writer.close()
    assert Path(writer.log_dir) == seed_ws / "logs" / "base" / "case1"
    assert list((seed_ws / "logs" / "base" / "case1").glob("events.out.tfevents.*"))


def test_config_only_use_imports_no_torch_or_lightning(seed_ws):
    code = textwrap.dedent(
        f"""
        import sys
        import sucrose_lightning as sucrose
        ssc = sucrose.scenario({str(seed_ws)!r}, "base/case1")
        ssc["model.input_dim"]; ssc.partial(lambda **kw: kw, "model")()
        bad = [m for m in ("torch", "lightning", "tensorboard") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


TRAIN = textwrap.dedent(
    """
    import sys, torch
    import sucrose_lightning as sucrose
    ws, epochs = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    ssc = sucrose.scenario(ws, "base/case1")
    model = torch.nn.Linear(ssc["model.input_dim"], 1)
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    ssc.load_state_dict(model=model, optim=optim)
    for epoch in sucrose.epoch_range(epochs):
        for _ in range(5):
            optim.zero_grad()
            model(torch.randn(8, ssc["model.input_dim"])).pow(2).mean().backward()
            optim.step()
            sucrose.step()
        ssc.save_state_dict(1, model=model, optim=optim)
    torch.save(model.state_dict(), sys.argv[3])
    print(ssc.last_epoch, ssc.num_steps)
    """
)


def test_two_processes_train_then_resume(seed_ws, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    straight = seed_ws.parent / "straight"
    straight.mkdir()
    (straight / "config.yaml").write_text((seed_ws / "config.yaml").read_text())

    def run(ws, epochs, out):
        res = subprocess.run(
            [sys.executable, str(script), str(ws), str(epochs), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        return res.stdout.split()

    assert run(seed_ws, 2, tmp_path / "a.pt") == ["2", "10"]
    assert run(seed_ws, 3, tmp_path / "b.pt") == ["5", "25"]  # resumed: epochs and steps continue
    assert run(straight, 5, tmp_path / "c.pt") == ["5", "25"]
    resumed, uninterrupted = torch.load(tmp_path / "b.pt"), torch.load(tmp_path / "c.pt")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)  # bitwise: rng restored
    names = sorted(p.name for p in (seed_ws / "ckpts" / "base" / "case1").glob("*.pt"))
    assert names == [f"base_case1_e{i}.pt" for i in range(1, 6)]


def test_unlistable_checkpoint_folder_is_a_clear_error(seed_ws, monkeypatch):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    ssc.save_state_dict(x=1)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("sucrose_lightning.layout.os.scandir", denied)
    fresh = sucrose.scenario(seed_ws, "base/case1")
    with pytest.raises(sucrose.CheckpointError, match=r"cannot list the checkpoint folder .*Permission"):
        _ = fresh.last_epoch


def _flip_in_pickle(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    raw = bytearray(path.read_bytes())
    # the local header is 30 bytes + name + extra; the entry's bytes follow (stored, not deflated)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.file_size // 2] ^= 0x55
    path.write_bytes(bytes(raw))


def test_flipped_byte_in_pickle_falls_back_not_unsafe(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(marker=1)
    newest = ssc.save_state_dict(marker=2)
    ssc.close()
    _flip_in_pickle(newest)
    fresh = sucrose.scenario(seed_ws, "base")
    with pytest.warns(sucrose.SucroseWarning, match=r"base_e2\.pt.*CRC"):
        assert fresh.load_state_dict() == {"marker": 1}
    assert fresh.last_epoch == 1


def test_damaged_random_state_falls_back(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(marker=1)
    data = torch.load(ssc.save_state_dict(marker=2), weights_only=True)
    data["sucrose"]["rng"]["python"] = [3, [1, 2, 3], None]  # not a Mersenne Twister state
    torch.save(data, ssc.ckpts_dir / "base_e2.pt")
    ssc.close()
    fresh = sucrose.scenario(seed_ws, "base")
    with pytest.warns(sucrose.SucroseWarning, match="damaged random state"):
        assert fresh.load_state_dict() == {"marker": 1}
    assert fresh.last_epoch == 1


def test_object_that_does_not_fit_names_entry_and_file(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(model=torch.nn.Linear(3, 2))
    with pytest.raises(sucrose.CheckpointError, match=r"entry 'model' of .*base_e1\.pt into Linear"):
        ssc.load_state_dict(model=torch.nn.Linear(5, 2))


def test_partial_strict_option_and_strict_parameter(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")

    def net(input_dim, strict=False):
        return input_dim, strict

    with pytest.raises(sucrose.SucroseError, match="its own parameter 'strict'"):
        ssc.partial(net, "model", strict=True)
    with pytest.warns(sucrose.SucroseConfigWarning):
        assert ssc.partial(net, "model")(strict=True) == (100, True)


def test_config_of_empty_prefix_is_everything(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    assert ssc.config_of("") == dict(ssc.config)
    assert ssc.unused_keys() == []


def test_scan_ignores_folders_and_tricky_names(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(x=1)
    (ssc.ckpts_dir / "base_e9.pt").mkdir()  # a folder that looks like a checkpoint
    (ssc.ckpts_dir / "junk\nbase_e8.pt").write_bytes(b"x")  # a name with a newline in it
    (ssc.ckpts_dir / "base_e\u0667.pt").write_bytes(b"x")  # a non-ASCII digit
    assert [c.epochs for c in ssc.ckpts(plain_loop=True)] == [1]
    assert sucrose.scenario(seed_ws, "base").last_epoch == 1
    ssc.save_state_dict(x=2)  # a real base_e2.pt beside "junk\nbase_e2.pt": listed once
    (ssc.ckpts_dir / "junk\nbase_e2.pt").write_bytes(b"x")
    assert [c.epochs for c in ssc.ckpts(plain_loop=True)] == [1, 2]


@pytest.mark.filterwarnings("ignore:pickle_load_args only works:UserWarning")  # torch's, about the typo
def test_intact_file_that_cannot_load_stops_without_skipping_it(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(marker=1)
    ssc.save_state_dict(marker=2)
    ssc.close()
    fresh = sucrose.scenario(seed_ws, "base")
    with warnings.catch_warnings():
        warnings.simplefilter("error", sucrose.SucroseWarning)  # nothing is skipped
        with pytest.raises(sucrose.CheckpointError, match=r"base_e2\.pt \(the file itself is intact") as err:
            fresh.load_state_dict(loader_kwds={"map_locaton": "cpu"})  # a typo in loader_kwds
    assert not isinstance(err.value, sucrose.DamagedCheckpointError)
    assert sorted(p.name for p in fresh.ckpts_dir.glob("*.pt")) == ["base_e1.pt", "base_e2.pt"]


def test_unreadable_given_epoch_says_to_load_another(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base")
    ssc.save_state_dict(marker=1)
    ssc.save_state_dict(marker=2)
    (ssc.ckpts_dir / "base_e1.pt").write_bytes(b"")
    with (
        pytest.warns(sucrose.SucroseWarning, match=r"base_e1\.pt: the file is empty"),
        pytest.raises(sucrose.CheckpointError, match=r"after 1 epochs.*load another epoch"),
    ):
        ssc.load_state_dict(epoch=1)
