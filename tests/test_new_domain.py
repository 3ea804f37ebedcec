"""``sucrose new`` / ``sucrose.new_domain``: a named variant appended, every existing byte kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sucrose_lightning as sucrose
from sucrose_lightning.cli import main
from sucrose_lightning.config import load_config

COMMENTED = """\
# experiments of the week   (a comment, odd spacing kept)
workspace:
  ckpts_folder: ckpts   # trailing comment

base:
  model.width: 64       # the default width
  optim.lr: 1.0e-2
  optim.betas: [0.9, 0.999]
  'quoted.key': "kept as written"


# two blank lines above, none after the last line\
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(COMMENTED)
    return tmp_path


def test_new_keeps_the_file_byte_for_byte_apart_from_the_added_lines(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (ws / "config.yaml").read_bytes()
    code = main(
        ["-w", str(ws), "new", "base/wide", "--set", "model.width=256", "--set", "optim.betas=[0.8, 0.9]"]
    )
    assert code == 0, capsys.readouterr().err
    after = (ws / "config.yaml").read_bytes()
    added = b"\n\nbase/wide:\n  model.width: 256\n  optim.betas: [0.8, 0.9]\n"
    assert after == before + added  # (the file had no final newline: one is added first)
    assert "added 'base/wide'" in capsys.readouterr().out
    cfg = load_config(ws)
    assert cfg.merged("base/wide")[0] == {
        "model.width": 256,
        "optim.lr": 0.01,
        "optim.betas": [0.8, 0.9],
        "quoted.key": "kept as written",
    }
    # and again on the file as it is now: only lines at the end
    sucrose.new_domain(ws, "base/wide/fast", {"optim.lr": 0.1})
    assert (ws / "config.yaml").read_bytes() == after + b"\nbase/wide/fast:\n  optim.lr: 0.1\n"


def test_values_are_read_as_yaml_and_written_back_as_the_same_values(ws: Path) -> None:
    values = {"model.width": 0o17, "optim.lr": 1e-5, "optim.betas": {"a": [1, None]}, "quoted.key": "yes"}
    sucrose.new_domain(ws, "base/odd", values, new_keys=True)
    assert load_config(ws).domains["base/odd"] == values  # "yes" stays a string, not True


def test_dry_run_prints_and_leaves_the_file(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (ws / "config.yaml").read_bytes()
    assert (
        main(["-w", str(ws), "new", "base/x", "--set", "optim.lr=0.5", "--dry-run", "--format", "json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] and report["text"] == "\nbase/x:\n  optim.lr: 0.5\n"
    assert (ws / "config.yaml").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["base"], "domain 'base' already exists in"),
        (["workspace"], "domain 'workspace' already exists"),
        (["base/../x"], "bad domain name 'base/../x': segment '..' is not allowed"),
        (
            ["base/w", "--set", "model.widht=3"],
            "key 'model.widht' is not set by its ancestor 'base'; did you mean",
        ),
        (["other", "--set", "a.b=1"], "key 'a.b' is not set by no ancestor (it is a top-level domain)"),
        (["base/w", "--set", "optim.lr"], "--set 'optim.lr': write it as key=value"),
        (["base/w", "--set", "optim.lr=[1,"], "the value is not valid YAML"),
        (["base/w", "--set", "optim.lr=1", "--set", "optim.lr=2"], "--set optim.lr=... is given twice"),
    ],
)
def test_refusals_name_the_problem_and_leave_the_file(
    ws: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = (ws / "config.yaml").read_bytes()
    assert main(["-w", str(ws), "new", *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert (ws / "config.yaml").read_bytes() == before


def test_new_key_allows_a_key_no_ancestor_sets(ws: Path) -> None:
    assert main(["-w", str(ws), "new", "base/w", "--set", "model.depth=3", "--new-key"]) == 0
    assert load_config(ws).merged("base/w")[0]["model.depth"] == 3


def test_a_grid_child_counts_as_an_existing_domain_and_new_can_add_a_grid(ws: Path) -> None:
    sucrose.new_domain(ws, "base/lr", {".grid": {"optim.lr": [0.1, 0.01]}})
    cfg = load_config(ws)
    assert cfg.grids == {"base/lr/lr=0.1": "base/lr", "base/lr/lr=0.01": "base/lr"}
    with pytest.raises(sucrose.ConfigError, match="a child of the grid domain 'base/lr'"):
        sucrose.new_domain(ws, "base/lr/lr=0.1", {})


def test_a_value_the_file_cannot_hold_is_refused_naming_the_file(ws: Path) -> None:
    before = (ws / "config.yaml").read_bytes()
    with pytest.raises(sucrose.ConfigError, match=r"adding 'base/g': .*config.yaml:\d+:\d+: domain 'base/g'"):
        sucrose.new_domain(ws, "base/g", {".grid": {"optim.lr": 3}})
    assert (ws / "config.yaml").read_bytes() == before


def test_a_broken_file_is_reported_as_every_command_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text("base:\n  a: 1\n  a: 2\n")
    assert main(["-w", str(tmp_path), "new", "base/x"]) == 1
    assert "duplicate key 'a'" in capsys.readouterr().err
    assert main(["-w", str(tmp_path / "none"), "new", "base/x"]) == 2
