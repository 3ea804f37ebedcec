"""The ``sucrose`` command, driven in subprocesses on a real workspace.

The workspace is built once per module: real checkpoints written by ``save_state_dict``,
a Lightning-style ``.ckpt`` written with ``torch.save``, real TensorBoard event files
written by ``SummaryWriter``, and an orphan folder of a domain that was removed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

import sucrose_lightning as sucrose
from sucrose_lightning.cli.render import human_size, iso_time
from sucrose_lightning.config import load_config

CONFIG = """\
base:
  model.input_dim: 8
  model.hidden_dim: 16
  optim.lr: 0.01
  train.epochs: 4

base/wide:
  model.hidden_dim: 64

base/wide/lr3:
  optim.lr: 0.001
  train.warmup: 100

base/small:
  model.hidden_dim: 4
  notes: "a: string"
"""
RUNS = (("base", 4, 0.01), ("base/wide", 3, 0.01), ("base/wide/lr3", 2, 0.001))
DEAD_PID = 4_194_305  # above Linux's largest pid_max: never a running process


def _build(ws: Path) -> None:
    import torch

    ws.mkdir(parents=True, exist_ok=True)
    (ws / "config.yaml").write_text(CONFIG)
    for name, epochs, lr in RUNS:
        with sucrose.scenario(ws, name) as ssc:
            model = torch.nn.Linear(ssc["model.input_dim"], ssc["model.hidden_dim"])
            writer = ssc.start_pytorch_tensorboard()
            for epoch in sucrose.epoch_range(epochs):
                for _ in range(5):
                    sucrose.step()
                    writer.add_scalar("train/loss", math.exp(-lr * 30 * ssc.num_steps), ssc.num_steps)
                writer.add_scalar("val/acc", 1 - 0.5 / (epoch + 1), ssc.num_steps)
                ssc.save_state_dict(1, model=model)
            writer.close()
    # a Lightning checkpoint (mid-epoch save) next to the plain ones of base/wide
    torch.save({"state_dict": {}}, ws / "ckpts/base/wide/base_wide_e3_s17.ckpt")
    # an orphan: checkpoints of a domain no longer in config.yaml
    (ws / "ckpts/base/old").mkdir(parents=True)
    torch.save({"x": torch.zeros(3)}, ws / "ckpts/base/old/base_old_e7.pt")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "ws"
    _build(root)
    return root


@pytest.fixture()
def ws_copy(ws: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ws"
    shutil.copytree(ws, dst)
    return dst


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sucrose_lightning", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


# --------------------------------------------------------------------------- ls


def test_ls_table(ws: Path) -> None:
    proc = run("ls", cwd=ws)  # workspace defaults to the current folder
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SCENARIO", "EPOCHS", "CKPTS", "NEWEST", "LOGS", "STATUS"]
    rows = {line.strip().split()[0]: line for line in lines[1:5]}
    assert [line.split()[0] for line in lines[1:5]] == ["base", "base/wide", "base/wide/lr3", "base/small"]
    assert rows["base"].startswith("base ")
    assert rows["base/wide"].startswith("  base/wide ")
    assert rows["base/wide/lr3"].startswith("    base/wide/lr3 ")
    assert rows["base"].split()[1:3] == ["4/4", "4"]  # 4 epochs done of the last run's target 4
    assert rows["base/wide"].split()[1:4] == ["3/3", "s17", "4"]  # the .ckpt counts, and is newest
    assert rows["base/wide/lr3"].split()[-2:] == ["yes", "finished"]  # LOGS, then STATUS
    assert rows["base/small"].split()[1:4] == ["-", "0", "-"]
    assert rows["base/small"].split()[-2:] == ["no", "-"]  # no run recorded
    assert "orphans" in proc.stdout
    assert lines[-1].split()[:3] == ["base/old", "7", "1"]


def test_ls_size_column(ws: Path) -> None:
    lines = run("-w", str(ws), "ls", "--size").stdout.splitlines()
    assert lines[0].split() == ["SCENARIO", "EPOCHS", "CKPTS", "SIZE", "NEWEST", "LOGS", "STATUS"]
    rows = {line.strip().split()[0]: line.split() for line in lines[1:5]}
    total = sum(p.stat().st_size for p in (ws / "ckpts/base/wide").glob("base_wide_e*"))
    assert rows["base/wide"][4:6] == human_size(total).split()  # both extensions, after EPOCHS 3/3 s17
    assert rows["base/small"][1:4] == ["-", "0", "-"]
    orphan = [line for line in lines if line.startswith("base/old")]
    assert orphan and orphan[0].split()[1:3] == ["7", "1"]


def test_ls_lists_a_linked_folder_and_the_orphans_of_a_walk(ws_copy: Path, tmp_path: Path) -> None:
    from sucrose_lightning.inventory import find_orphans, list_tree

    elsewhere = tmp_path / "scratch" / "small"
    elsewhere.mkdir(parents=True)
    (elsewhere / "base_small_e2.pt").write_bytes((ws_copy / "ckpts/base/base_e1.pt").read_bytes())
    (ws_copy / "ckpts/base/small").symlink_to(elsewhere)  # checkpoints on another disk
    (ws_copy / "ckpts/gone/deep").mkdir(parents=True)
    (ws_copy / "ckpts/gone/deep/x.txt").write_text("left behind")
    (ws_copy / "ckpts/empty").mkdir()
    # same length and tail as base's own names, another scenario's head: not base's checkpoint
    (ws_copy / "ckpts/base/xase_e9.pt").write_bytes((ws_copy / "ckpts/base/base_e1.pt").read_bytes())
    data = json.loads(run("-w", str(ws_copy), "ls", "--format", "json").stdout)
    small = {s["name"]: s for s in data["scenarios"]}["base/small"]
    assert (small["epochs"], small["ckpts"]) == (2, 1)
    base = {s["name"]: s for s in data["scenarios"]}["base"]
    assert (base["epochs"], base["ckpts"]) == (4, 4)
    cfg = load_config(ws_copy)
    assert find_orphans(ws_copy, cfg, list_tree(ws_copy / "ckpts")) == find_orphans(ws_copy, cfg)
    assert [o["name"] for o in data["orphans"]] == ["base/old", "gone/deep"]


def test_ls_newest_is_the_time_of_the_most_advanced_checkpoint(ws_copy: Path) -> None:
    folder = ws_copy / "ckpts/base"
    os.utime(folder / "base_e1.pt", (2_000_000_000, 2_000_000_000))  # the oldest touched last
    os.utime(folder / "base_e4.pt", (1_800_000_000, 1_800_000_000))
    data = json.loads(run("-w", str(ws_copy), "ls", "--format", "json").stdout)
    base = {s["name"]: s for s in data["scenarios"]}["base"]
    assert (base["epochs"], base["newest_time"]) == (4, iso_time(1_800_000_000))


def test_ls_json(ws: Path) -> None:
    proc = run("-w", str(ws), "ls", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    by_name = {s["name"]: s for s in data["scenarios"]}
    assert list(by_name) == ["base", "base/wide", "base/wide/lr3", "base/small"]
    assert (by_name["base"]["epochs"], by_name["base"]["ckpts"], by_name["base"]["logs"]) == (4, 4, True)
    assert (by_name["base/wide"]["epochs"], by_name["base/wide"]["step"]) == (3, 17)
    assert by_name["base/wide"]["ckpts"] == 4
    assert by_name["base/wide/lr3"]["depth"] == 2
    assert by_name["base/wide/lr3"]["parent"] == "base/wide"
    assert by_name["base"]["size"] is None  # sizes cost a stat per file: only with --size
    sized = json.loads(run("-w", str(ws), "ls", "--size", "--format", "json").stdout)
    expected = sum(p.stat().st_size for p in (ws / "ckpts/base").glob("base_e*.pt"))
    assert {s["name"]: s for s in sized["scenarios"]}["base"]["size"] == expected
    assert by_name["base/small"] == {**by_name["base/small"], "epochs": None, "ckpts": 0, "logs": False}
    assert [o["name"] for o in data["orphans"]] == ["base/old"]


# --------------------------------------------------------------------------- show and diff


def test_show_table(ws: Path) -> None:
    proc = run("-w", str(ws), "show", "base/wide/lr3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "FROM", "OVERRIDES"]
    rows = {line.split()[0]: line.split(None, 3) for line in lines[1:]}
    assert rows["model.hidden_dim"] == ["model.hidden_dim", "64", "base/wide", "base: 16"]
    assert rows["optim.lr"] == ["optim.lr", "0.001", "base/wide/lr3", "base: 0.01"]
    assert rows["model.input_dim"] == ["model.input_dim", "8", "base"]


def test_show_yaml_pastes_back_as_a_domain(ws: Path, tmp_path: Path) -> None:
    for origin in ([], ["--origin"]):
        proc = run("-w", str(ws), "show", "base/small", "--format", "yaml", *origin)
        assert proc.returncode == 0, proc.stderr
        merged = load_config(ws).merged("base/small")[0]
        assert yaml.safe_load(proc.stdout) == {"base/small": merged}
        # pasted into a config as a new top-level domain, it gives the same config
        (tmp_path / "config.yaml").write_text(proc.stdout.replace("base/small:", "flat:"))
        assert load_config(tmp_path).merged("flat")[0] == merged
    assert "# from base/small; overrides base: 16" in proc.stdout
    assert proc.stdout.startswith("# scenario base/small: chain base/small -> base")


def test_show_json_and_prefix(ws: Path) -> None:
    proc = run("-w", str(ws), "show", "base/wide/lr3", "--prefix", "optim", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["chain"] == ["base/wide/lr3", "base/wide", "base"]
    assert data["config"] == {"optim.lr": 0.001}
    assert data["keys"] == [
        {
            "key": "optim.lr",
            "value": 0.001,
            "origin": "base/wide/lr3",
            "overrides": [{"domain": "base", "value": 0.01}],
        }
    ]


def test_diff(ws: Path) -> None:
    proc = run("-w", str(ws), "diff", "base/wide", "base/small")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["KEY", "base/wide", "base/small"]
    assert lines[1].split() == ["model.hidden_dim", "64", "4"]
    assert lines[2].split() == ["notes", "(unset)", "'a:", "string'"]
    assert lines[-1] == "1 differ, 0 only in base/wide, 1 only in base/small, 3 the same"

    proc = run("diff", "base/wide", "base/wide/lr3", "--format", "json", "-w", str(ws))  # -w after works too
    data = json.loads(proc.stdout)
    assert data["differ"] == [
        {"key": "optim.lr", "a": 0.01, "b": 0.001, "a_origin": "base", "b_origin": "base/wide/lr3"}
    ]
    assert (data["only_a"], data["only_b"], data["same"]) == ({}, {"train.warmup": 100}, 3)


def test_usage_errors_exit_2_with_one_line(ws: Path, tmp_path: Path) -> None:
    proc = run("-w", str(ws), "show", "base/wid")
    assert_usage_error(proc, "unknown scenario 'base/wid'", "did you mean 'base/wide'")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert_usage_error(run("-w", str(ws), "diff", "base", "bse"), "did you mean 'base'")
    assert_usage_error(run("-w", str(tmp_path / "missing"), "ls"), "is not a folder")
    assert_usage_error(run("-w", str(tmp_path), "show", "base"), "no config.yaml")
    assert_usage_error(run("-w", str(ws), "prune", "base", "--keep", "0"), "at least 1")


# --------------------------------------------------------------------------- check


def test_check_clean_workspace(ws_copy: Path) -> None:
    shutil.rmtree(ws_copy / "ckpts/base/old")
    # a save in progress: the temporary file of a running process is not a problem
    live = ws_copy / f"ckpts/base/.base_e5.pt.{os.getpid()}.123{'.tmp'}"
    live.write_bytes(b"PK")
    proc = run("-w", str(ws_copy), "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "ok: 4 scenario(s), 10 checkpoint(s) checked, no problems"
    assert "a save in progress" in proc.stdout


def test_check_finds_every_problem(ws_copy: Path) -> None:
    truncated = ws_copy / "ckpts/base/base_e4.pt"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    flipped = ws_copy / "ckpts/base/wide/base_wide_e2.pt"
    data = bytearray(flipped.read_bytes())
    with zipfile.ZipFile(flipped) as archive:  # flip a byte inside the biggest tensor's bytes
        tensors = [i for i in archive.infolist() if "/data/" in i.filename]
        big = max(tensors, key=lambda i: i.file_size)
    head = big.header_offset
    start = head + 30 + int.from_bytes(data[head + 26 : head + 28], "little")
    start += int.from_bytes(data[head + 28 : head + 30], "little")
    data[start + big.file_size // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    leftover = ws_copy / f"ckpts/base/wide/.base_wide_e4.pt.{DEAD_PID}.99.tmp"
    leftover.write_bytes(b"partial")

    proc = run("-w", str(ws_copy), "check", "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    kinds = sorted((p["kind"], Path(p["path"]).name) for p in report["problems"])
    assert kinds == [("ckpt", "base_e4.pt"), ("orphan", "old"), ("temp", leftover.name)]

    proc = run("-w", str(ws_copy), "check", "--verify")
    assert proc.returncode == 1
    assert f"{flipped}: unreadable checkpoint: entry" in proc.stdout
    assert "CRC" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("4 problem(s) found")
    assert "Traceback" not in proc.stderr

    # ls reports the newest *readable* stamp as the epochs done, and flags the broken newer one
    base = json.loads(run("-w", str(ws_copy), "ls", "--format", "json").stdout)["scenarios"][0]
    assert (base["name"], base["epochs"], base["ckpts"], base["unreadable_newer"]) == ("base", 3, 4, 1)


def test_check_lists_every_config_problem(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("base:\n  a: 1\n  a: 2\n../bad:\n  b: 1\nother: 3\n")
    proc = run("-w", str(tmp_path), "check")
    assert proc.returncode == 1
    cfg = str(tmp_path / "config.yaml")
    out = proc.stdout.splitlines()
    assert any(line.startswith(f"{cfg}:3:3: duplicate key 'a'") for line in out)
    assert any(line.startswith(f"{cfg}:4:1: bad domain name '../bad'") for line in out)
    assert any(line.startswith(f"{cfg}:6:8: the body of domain 'other'") for line in out)
    # other subcommands refuse a broken config with exit 1 and no traceback
    proc = run("-w", str(tmp_path), "ls")
    assert proc.returncode == 1
    assert "duplicate key" in proc.stderr and "Traceback" not in proc.stderr


def test_config_commands_import_nothing_heavy(ws: Path) -> None:
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from sucrose_lightning.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            codes = [main(["-w", {str(ws)!r}, *a.split()]) for a in
                     ("ls", "show base/wide", "show base --format yaml", "diff base base/wide", "check")]
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} &
                       {{"torch", "lightning", "tensorboard", "matplotlib", "numpy"}})
        print(codes, heavy)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[0, 0, 0, 0, 1] []", proc.stderr


# --------------------------------------------------------------------------- scalars and plot


def test_scalars_csv_json_and_tags(ws: Path) -> None:
    proc = run("-w", str(ws), "scalars", "base/wide/lr3", "--tag", "val/acc")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "scenario,step,wall_time,value"
    assert [(r.split(",")[1], r.split(",")[3]) for r in lines[1:]] == [("5", "0.5"), ("10", "0.75")]

    proc = run("-w", str(ws), "scalars", "base", "base/wide", "--tag", "train/loss", "--format", "json")
    data = json.loads(proc.stdout)
    assert [len(data["series"][n]) for n in ("base", "base/wide")] == [20, 15]
    assert data["series"]["base"][0]["step"] == 1
    assert data["series"]["base"][0]["value"] == pytest.approx(math.exp(-0.3), rel=1e-6)

    proc = run("-w", str(ws), "scalars", "base", "base/small", "--list-tags")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[1].split() == ["train/loss", "20", "0"]
    assert "'base/small' has no scalars" in proc.stderr


def test_plot_writes_png(ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "loss.png"
    names = ["base", "base/wide", "base/wide/lr3"]
    proc = run("-w", str(ws), "plot", *names, "--tag", "train/loss", "-o", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(proc.stdout)
    assert [(line["scenario"], line["points"]) for line in data["lines"]] == [
        ("base", 20),
        ("base/wide", 15),
        ("base/wide/lr3", 10),
    ]

    proc = run("-w", str(ws), "plot", "base", "--tag", "train/los", cwd=tmp_path)
    assert proc.returncode == 1
    assert "did you mean 'train/loss'" in proc.stderr
    assert_usage_error(run("-w", str(ws), "plot", "base"), "--tag is required")


def test_plot_figure_has_one_line_per_scenario(ws: Path) -> None:
    pytest.importorskip("matplotlib")
    from sucrose_lightning.cli import plot_figure
    from sucrose_lightning.tbreader import read_scalars

    names = ["base", "base/wide", "base/wide/lr3"]
    series = {n: read_scalars(ws / "logs" / n)["train/loss"] for n in names}
    fig = plot_figure(series, "train/loss")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == names
    assert list(lines[2].get_xdata()) == list(range(1, 11))
    assert fig.axes[0].get_xlabel() == "step"


def test_plot_without_matplotlib(ws: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from sucrose_lightning.cli import main\n"
        f"sys.exit(main(['-w', {str(ws)!r}, 'plot', 'base', '--tag', 'train/loss']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sucrose: sucrose plot needs matplotlib, which is not installed; "
        "install it with: pip install 'sucrose-lightning[plot]'"
    ]


# --------------------------------------------------------------------------- prune


def test_prune_dry_run_then_yes(ws_copy: Path) -> None:
    folder = ws_copy / "ckpts/base/wide"
    temp = folder / f".base_wide_e9.pt.{DEAD_PID}.1.tmp"
    temp.write_bytes(b"x")
    (folder / "base_wide_e1.ckpt").write_bytes(b"")  # unreadable: never counted or deleted
    before = sorted(p.name for p in folder.iterdir())

    proc = run("-w", str(ws_copy), "prune", "base/wide", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:3]] == [
        "base_wide_e1.pt",
        "base_wide_e2.pt",
    ]
    assert "run again with --yes" in proc.stdout
    assert "leaving unreadable" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # a dry run deletes nothing

    proc = run("-w", str(ws_copy), "prune", "base/wide", "--keep", "1", "--yes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [Path(d["path"]).name for d in data["delete"]] == ["base_wide_e1.pt", "base_wide_e2.pt"]
    assert [Path(k["path"]).name for k in data["kept"]] == ["base_wide_e3.pt", "base_wide_e3_s17.ckpt"]
    assert data["freed"] > 0 and not data["dry_run"]
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(set(before) - {"base_wide_e1.pt", "base_wide_e2.pt"})
    assert temp.exists() and (folder / "lr3").is_dir()

    proc = run("-w", str(ws_copy), "prune", "base/wide", "--keep", "1")
    assert proc.stdout.startswith("nothing to prune")


def test_read_scalars_resumed_run_keeps_the_last_value_per_step(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from sucrose_lightning.tbreader import has_events, read_scalars

    assert not has_events(tmp_path) and read_scalars(tmp_path) == {}
    for value, steps in ((1.0, range(5)), (2.0, range(3, 7))):  # a run, then its resume from step 3
        writer = SummaryWriter(log_dir=str(tmp_path), filename_suffix=f".{value}")
        for step in steps:
            writer.add_scalar("loss", value, step)
        writer.close()
    points = read_scalars(tmp_path)["loss"]
    expected = [(s, 1.0) for s in range(3)] + [(s, 2.0) for s in range(3, 7)]
    assert [(p.step, p.value) for p in points] == expected


# --------------------------------------------------------------------------- review fixes


def test_check_with_broken_config_still_checks_files(ws_copy: Path) -> None:
    (ws_copy / "config.yaml").write_text("base:\n  a: 1\n  a: 2\n")
    (ws_copy / "ckpts/base/wide/base_wide_e3.pt").write_bytes(b"PK\x03\x04 truncated")
    proc = run("-w", str(ws_copy), "check")
    assert proc.returncode == 1, proc
    assert "duplicate key 'a'" in proc.stdout
    assert "base_wide_e3.pt: unreadable checkpoint" in proc.stdout
    assert "note: config.yaml could not be read: checked the files under the default folder" in proc.stdout


def test_add_hparams_folder_is_not_an_orphan(ws_copy: Path) -> None:
    with sucrose.scenario(ws_copy, "base/small") as ssc:
        writer = ssc.start_pytorch_tensorboard()
        writer.add_hparams({"lr": 0.1}, {"hp/acc": 0.5})
        writer.close()
    assert [p for p in ssc.logs_dir.iterdir() if p.is_dir()]  # the writer made a sub-folder
    proc = run("-w", str(ws_copy), "ls", "--format", "json")
    assert [o["name"] for o in json.loads(proc.stdout)["orphans"]] == ["base/old"]


def test_json_output_is_strict_json_with_nan(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text("base:\n  x: .nan\n  y: .inf\n")
    proc = run("-w", str(ws), "show", "base", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["config"] == {"x": "nan", "y": "inf"}


def test_default_png_name() -> None:
    from sucrose_lightning.cli import _default_png

    assert _default_png("train/loss") == "train_loss.png"
    assert _default_png("!!!") == "plot.png"


def test_prune_refuses_while_the_scenario_is_training(ws_copy: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, sucrose_lightning as s\n"
            f"ssc = s.scenario({str(ws_copy)!r}, 'base/wide'); ssc.acquire_lock()\n"
            "print('held', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = sorted(p.name for p in (ws_copy / "ckpts/base/wide").iterdir())
        proc = run("-w", str(ws_copy), "prune", "base/wide", "--keep", "1", "--yes")
        assert_usage_error(proc, "already being trained by pid", "nothing deleted", "--force")
        assert sorted(p.name for p in (ws_copy / "ckpts/base/wide").iterdir()) == before
        proc = run("-w", str(ws_copy), "prune", "base/wide", "--keep", "1", "--yes", "--force")
        assert proc.returncode == 0, proc.stderr
        assert not (ws_copy / "ckpts/base/wide/base_wide_e1.pt").exists()
    finally:
        holder.communicate("\n", timeout=30)


# --------------------------------------------------------------------------- compute functions, no stdout


def test_ls_report_data(ws: Path) -> None:
    from sucrose_lightning.cli.ls import files_json, ls_report

    report = ls_report(ws, load_config(ws))
    assert [(e.files.name, e.depth, e.parent) for e in report.scenarios] == [
        ("base", 0, None),
        ("base/wide", 1, "base"),
        ("base/wide/lr3", 2, "base/wide"),
        ("base/small", 1, "base"),
    ]
    files = {e.files.name: e.files for e in report.scenarios}
    newest = files["base/wide"].newest
    assert newest is not None and (newest.epochs, newest.step) == (3, 17)
    assert len(files["base/wide"].ckpts) == 4 and files["base"].logs and not files["base/small"].ckpts
    assert [o.name for o in report.orphans] == ["base/old"]
    assert files_json(report.orphans[0])["epochs"] == 7


def test_prune_plan_and_dry_run_data(ws_copy: Path) -> None:
    from sucrose_lightning.cli.prune import prune, prune_plan
    from sucrose_lightning.inventory import store_of

    folder = ws_copy / "ckpts/base/wide"
    (folder / "base_wide_e1.ckpt").write_bytes(b"")  # unreadable: never deleted
    store = store_of(ws_copy, "base/wide", load_config(ws_copy).settings)
    plan = prune_plan(store, keep=1)
    assert [Path(c.path).name for c in plan.delete] == ["base_wide_e1.pt", "base_wide_e2.pt"]
    assert [Path(c.path).name for c in plan.kept] == ["base_wide_e3.pt", "base_wide_e3_s17.ckpt"]
    assert [Path(c.path).name for c in plan.unreadable] == ["base_wide_e1.ckpt"]
    assert plan.freed == sum((folder / n).stat().st_size for n in ("base_wide_e1.pt", "base_wide_e2.pt"))
    before = sorted(p.name for p in folder.iterdir())
    dry = prune(store, 1)
    assert dry.dry_run and dry.deleted == [] and sorted(p.name for p in folder.iterdir()) == before
    done = prune(store, 1, yes=True)
    assert [Path(p).name for p in done.deleted] == ["base_wide_e1.pt", "base_wide_e2.pt"]
    assert done.failed == [] and not (folder / "base_wide_e1.pt").exists()


def test_check_report_problems_data(ws_copy: Path) -> None:
    from sucrose_lightning.cli.check import check_report, render_check

    truncated = ws_copy / "ckpts/base/base_e4.pt"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    leftover = ws_copy / f"ckpts/base/wide/.base_wide_e4.pt.{DEAD_PID}.99.tmp"
    leftover.write_bytes(b"partial")
    live = ws_copy / f"ckpts/base/.base_e5.pt.{os.getpid()}.1.tmp"
    live.write_bytes(b"PK")
    report = check_report(ws_copy)
    assert [(p.kind, Path(p.path).name) for p in report.problems] == [
        ("ckpt", "base_e4.pt"),
        ("temp", leftover.name),
        ("orphan", "old"),
    ]
    assert report.problems[0].path == str(truncated)
    assert [(n.path, n.message) for n in report.notes] == [
        (str(live), "a save in progress (its process is running)")
    ]
    assert (report.ok, report.scenarios, report.ckpts, report.verify) == (False, 4, 11, False)
    assert render_check(report).code == 1


def test_show_and_diff_report_data(ws: Path) -> None:
    from sucrose_lightning.cli.diff import diff_report
    from sucrose_lightning.cli.show import show_report

    cfg = load_config(ws)
    shown = show_report(cfg, "base/wide/lr3", prefix="optim")
    assert shown.chain == ["base/wide/lr3", "base/wide", "base"]
    assert [(r.key, r.value, r.origin, [(o.domain, o.value) for o in r.overrides]) for r in shown.rows] == [
        ("optim.lr", 0.001, "base/wide/lr3", [("base", 0.01)])
    ]
    diff = diff_report(cfg, "base/wide", "base/wide/lr3")
    assert [(r.key, r.a, r.b) for r in diff.differ] == [("optim.lr", 0.01, 0.001)]
    assert (diff.only_a, diff.only_b, diff.same) == ({}, {"train.warmup": 100}, 3)
