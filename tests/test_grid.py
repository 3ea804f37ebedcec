"""Grid domains: ``.grid`` / ``.zip`` expand into ordinary, named child domains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sucrose_lightning.cli import main
from sucrose_lightning.config import Config, load_config
from sucrose_lightning.errors import ConfigError
from sucrose_lightning.grid import GRID_LIMIT


def _cfg(tmp_path: Path, text: str) -> Config:
    (tmp_path / "config.yaml").write_text(text)
    return load_config(tmp_path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, text)
    return err.value.problems


def test_grid_children_follow_their_domain_in_product_order(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "base:\n  optim.lr: 1\n  optim.wd: 1\n  model.act: relu\n"
        "base/lr:\n  model.act: tanh\n  .grid:\n    optim.lr: [0.1, 1.0e-5]\n    optim.wd: [0, 0.5]\n"
        "other:\n",
    )
    assert list(cfg.domains) == [
        "base",
        "base/lr",
        "base/lr/lr=0.1,wd=0",
        "base/lr/lr=0.1,wd=0.5",
        "base/lr/lr=1e-05,wd=0",
        "base/lr/lr=1e-05,wd=0.5",
        "other",
    ]
    assert cfg.domains["base/lr"] == {"model.act": "tanh"}  # the reserved key is gone
    assert cfg.merged("base/lr/lr=1e-05,wd=0.5")[0] == {
        "optim.lr": 1e-5,
        "optim.wd": 0.5,
        "model.act": "tanh",
    }


def test_zip_pairs_and_combines_with_grid(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "b:\n  .zip: {model.depth: [2, 4], model.width: [512, 256]}\n"
        "  .grid: {data.aug: [true, null, flip]}\n",
    )
    assert [n for n in cfg.domains if n != "b"] == [
        "b/aug=true,depth=2,width=512",
        "b/aug=true,depth=4,width=256",
        "b/aug=null,depth=2,width=512",
        "b/aug=null,depth=4,width=256",
        "b/aug=flip,depth=2,width=512",
        "b/aug=flip,depth=4,width=256",
    ]


def test_keys_sharing_a_last_part_are_named_in_full(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "b:\n  .grid: {enc.lr: [1], dec.lr: [2]}\n")
    assert list(cfg.grids) == ["b/enc.lr=1,dec.lr=2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "b:\n  .grid: {lr: 3}\n",
            "config.yaml:1:1: domain 'b': .grid 'lr' must be a non-empty list of values",
        ),
        ("b:\n  .grid: [1, 2]\n", "config.yaml:1:1: domain 'b': .grid must map keys to lists of values"),
        ("b:\n  .grid: {lr: [[1, 2]]}\n", "the grid value [1, 2] of 'lr' cannot name a folder"),
        ("b:\n  .grid: {opt: [a/b]}\n", "the grid value 'a/b' of 'opt' cannot name a folder"),
        ("b:\n  .grid: {lr: [0.1, '0.1']}\n", "the grid child 'b/lr=0.1' is made twice by the grid"),
        ("b:\n  .zip: {lr: [1, 2], wd: [1]}\n", "the lists of .zip must be of one length (lr: 2, wd: 1)"),
        ("b:\n  .grid: {lr: [1]}\n  .zip: {lr: [2]}\n", "['lr'] in both .grid and .zip; keep one"),
        ("b:\n  .grid: {lr: [1]}\nb/lr=1:\n", "the grid child 'b/lr=1' is a domain of the file ("),
        (
            "b:\n  .grid: {a: ["
            + ",".join(map(str, range(40)))
            + "], c: ["
            + ",".join(map(str, range(40)))
            + "]}\n",
            f"the grid makes 1600 children, more than {GRID_LIMIT}; shorten its lists",
        ),
    ],
)
def test_grid_problems_name_the_line_and_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    problems = _problems(tmp_path, text)
    assert any(message in p for p in problems), problems
    assert all("config.yaml:" in p for p in problems)


def test_a_dotted_key_still_may_not_start_with_a_dot(tmp_path: Path) -> None:
    assert any("has an empty part" in p for p in _problems(tmp_path, "b:\n  .other: 1\n"))


def test_grid_children_in_show_diff_and_ls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cfg(tmp_path, "base:\n  optim.lr: 1\nbase/lr:\n  .grid: {optim.lr: [0.1, 0.01]}\nzzz:\n")
    ws = str(tmp_path)
    assert main(["-w", ws, "show", "base/lr/lr=0.1", "--origin"]) == 0
    out = capsys.readouterr().out
    assert "chain base/lr/lr=0.1 -> base/lr -> base (made by the grid of base/lr)" in out
    assert main(["-w", ws, "show", "base/lr/lr=0.1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["grid"] == "base/lr"
    assert main(["-w", ws, "diff", "base/lr/lr=0.1", "base/lr/lr=0.01"]) == 0
    assert "optim.lr" in capsys.readouterr().out
    assert main(["-w", ws, "ls", "base/lr/*", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["scenarios"]
    assert [(s["name"], s["depth"]) for s in listed] == [("base/lr/lr=0.1", 0), ("base/lr/lr=0.01", 0)]
    assert main(["-w", ws, "ls", "base/rl/*"]) == 2
    assert "pattern 'base/rl/*' matches no scenario" in capsys.readouterr().err


def test_mv_refuses_a_grid_child(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cfg(tmp_path, "base:\n  optim.lr: 1\nbase/lr:\n  .grid: {optim.lr: [0.1]}\n")
    assert main(["-w", str(tmp_path), "mv", "base/lr/lr=0.1", "base/x"]) == 2
    assert "is made by the grid of 'base/lr' in config.yaml" in capsys.readouterr().err
