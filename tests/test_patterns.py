"""Patterns (``base/lr/*``) for ``ls``, ``plot`` and ``scalars``; ``--smooth`` and ``--logy``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sucrose_lightning.cli import main
from sucrose_lightning.cli.patterns import match_scenarios, pattern_regex
from sucrose_lightning.config import load_config

CONFIG = "base:\n  optim.lr: 1\nbase/lr:\n  .grid: {optim.lr: [0.1, 0.01]}\nbase/lr/extra/deep:\nother:\n"
VALUES = {"base/lr/lr=0.1": [4.0, 2.0, 1.0], "base/lr/lr=0.01": [8.0, 8.0, 2.0]}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("patterns")
    (root / "config.yaml").write_text(CONFIG)
    for name, values in VALUES.items():
        writer = SummaryWriter(log_dir=str(root / "logs" / name))
        for step, value in enumerate(values, 1):
            writer.add_scalar("val/loss", value, step)
        writer.close()
    return root


def test_star_stays_in_one_level_and_double_star_crosses(ws: Path) -> None:
    cfg = load_config(ws)
    assert match_scenarios(cfg, ["base/lr/*"]) == ["base/lr/lr=0.1", "base/lr/lr=0.01"]
    assert match_scenarios(cfg, ["base/lr/**"])[-1] == "base/lr/extra/deep"
    assert match_scenarios(cfg, ["other", "base/lr/lr=0.0?"]) == ["base/lr/lr=0.01", "other"]
    assert pattern_regex("base/[!x]*").fullmatch("base/lr")


def test_scalars_take_patterns_and_smooth(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(ws), "scalars", "base/lr/*", "--tag", "val/loss", "--format", "json"]) == 0
    raw = json.loads(capsys.readouterr().out)["series"]
    assert {n: [p["value"] for p in pts] for n, pts in raw.items()} == VALUES
    assert (
        main(
            [
                "-w",
                str(ws),
                "scalars",
                "base/lr/*",
                "--tag",
                "val/loss",
                "--smooth",
                "0.5",
                "--format",
                "json",
            ]
        )
        == 0
    )
    smoothed = json.loads(capsys.readouterr().out)["series"]["base/lr/lr=0.1"]
    # TensorBoard's debiased moving average, newer points weighing twice: 4; (4+2*2)/3; (4+2*2+4*1)/7
    assert [p["value"] for p in smoothed] == pytest.approx([4.0, 8 / 3, 12 / 7])
    assert main(["-w", str(ws), "scalars", "base/lr/*", "--tag", "val/loss", "--smooth", "1"]) == 2
    assert "must be at least 0 and below 1" in capsys.readouterr().err


def test_plot_takes_a_pattern_and_draws_a_log_axis(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    from sucrose_lightning.cli import plot_figure
    from sucrose_lightning.tbreader import ScalarPoint

    out = tmp_path / "loss.png"
    args = [
        "-w",
        str(ws),
        "plot",
        "base/lr/*",
        "--tag",
        "val/loss",
        "--logy",
        "-o",
        str(out),
        "--format",
        "json",
    ]
    assert main(args) == 0
    lines = json.loads(capsys.readouterr().out)["lines"]
    assert [line["scenario"] for line in lines] == ["base/lr/lr=0.1", "base/lr/lr=0.01"]
    assert out.read_bytes()[:4] == b"\x89PNG"
    fig = plot_figure({"a": [ScalarPoint(1, 0.0, 1.0)]}, "val/loss", logy=True)
    assert fig.axes[0].get_yscale() == "log"
    assert plot_figure({"a": [ScalarPoint(1, 0.0, 1.0)]}, "val/loss").axes[0].get_yscale() == "linear"
