"""``${key}`` references: resolved after the merge, whole values keep their type, errors at file:line."""

from __future__ import annotations

import pytest

import sucrose_lightning as sucrose
from sucrose_lightning.cli import main as cli_main
from sucrose_lightning.config import load_config

REFS = """
base:
  base.lr: 0.01
  optim.lr: ${base.lr}
  data.classes: 10
  data.sizes: [1, 2]
  model.out: ${data.classes}
  model.sizes: ${data.sizes}
  model.name: net
  run.dir: "runs/${model.name}/c${data.classes}"
  run.flag: "on=${run.on} none=${run.none} $${literal}"
  run.on: true
  run.none: null
  chain.a: ${chain.b}
  chain.b: ${base.lr}
base/big:
  data.classes: 100
  base.lr: 0.5
"""


def test_resolved_after_the_merge_with_types(make_ws):
    ws = make_ws(REFS)
    base = sucrose.scenario(ws, "base")
    assert base["optim.lr"] == 0.01 and type(base["optim.lr"]) is float
    assert base["model.out"] == 10 and type(base["model.out"]) is int
    assert base["model.sizes"] == [1, 2]
    assert base["run.dir"] == "runs/net/c10"
    assert base["run.flag"] == "on=true none=null ${literal}"
    assert base["chain.a"] == 0.01
    big = sucrose.scenario(ws, "base/big")  # the child's override reaches every reference
    got = (big["optim.lr"], big["model.out"], big["run.dir"], big["chain.a"])
    assert got == (0.5, 100, "runs/net/c100", 0.5)
    assert big.origin("optim.lr") == "base"
    assert big.hparams()["model.out"] == 100  # what loggers and checkpoints record: resolved
    assert big.meta(1)["config"]["optim.lr"] == 0.5
    big.close()
    base.close()


def test_a_copied_list_is_not_shared(make_ws):
    ssc = sucrose.scenario(make_ws(REFS), "base")
    ssc.config["model.sizes"].append(3)
    assert ssc["data.sizes"] == [1, 2]


def test_missing_and_cycles_all_reported_with_lines(make_ws):
    ws = make_ws(
        """
        base:
          a: ${nope}
          b: ${c}
          c: ${b}
          d: ${data.clases}
          data.classes: 3
          e: "x${data}"
          f: ${data.classes:int}
          g: "in ${lst} text"
          lst: [1]
        base/ok:
          nope: 1
        """
    )
    with pytest.raises(sucrose.ConfigError) as info:
        sucrose.scenario(ws, "base")
    problems = info.value.problems
    assert len(problems) == 6, problems
    text = "\n".join(problems)
    assert "config.yaml:3:3: scenario 'base', key 'a' (set in domain 'base'): the reference ${nope}" in text
    assert "config.yaml:4:3:" in text and "circle (b -> c -> b)" in text
    assert "did you mean 'data.classes'?" in text
    assert "resolvers and expressions are not supported" in text
    assert "config.yaml:10:3:" in text and "cannot be written into a string" in text
    # a child that defines the missing key fixes it for that scenario only (and the cycle stays)
    with pytest.raises(sucrose.ConfigError, match="circle"):
        sucrose.scenario(ws, "base/ok")


def test_show_origin_shows_what_was_written(make_ws, capsys):
    ws = make_ws(REFS)
    assert cli_main(["-w", str(ws), "show", "base/big", "--origin"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("optim.lr"))
    assert row.split() == ["optim.lr", "0.5", "${base.lr}", "base"]
    assert cli_main(["-w", str(ws), "show", "base/big", "--origin", "--format", "yaml"]) == 0
    assert "# from base, written ${base.lr}\n  optim.lr: 0.5" in capsys.readouterr().out
    assert load_config(ws).merged("base/big", resolve=False)[0]["optim.lr"] == "${base.lr}"
