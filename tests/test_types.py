"""Bound values checked against annotations: every problem of one call at once, converted values."""

from __future__ import annotations

import dataclasses
import enum
import warnings
from pathlib import Path
from typing import Literal, Optional

import pytest

import sucrose_lightning as sucrose


class Act(enum.Enum):
    RELU = "relu"
    GELU = "gelu"


@dataclasses.dataclass
class Enc:
    dim: int
    act: Act = Act.RELU


class Net:
    def __init__(
        self,
        hidden_dim: int,
        lr: float,
        flag: bool,
        name: str,
        opt: Optional[int],  # noqa: UP045 - the spelling the issue names
        kind: Literal["a", "b"],
        layers: list[int],
        weights: dict[str, float],
        act: Act,
        root: Path,
        encoder: Enc,
        untyped=None,
    ) -> None:
        self.got = dict(locals())
        del self.got["self"]


GOOD = """
base:
  model.hidden_dim: 64
  model.lr: 1
  model.flag: true
  model.name: x
  model.opt: null
  model.kind: a
  model.layers: [1, 2]
  model.weights: {a: 1, b: 2.5}
  model.act: gelu
  model.root: data/x
  model.encoder.dim: 3
  model.untyped: "anything"
"""

BAD = """
base/bad:
  model.hidden_dim: "64"
  model.lr: 1e-3
  model.flag: maybe
  model.name: yes
  model.opt: 1.5
  model.kind: c
  model.layers: [1, x]
  model.weights: {a: z}
  model.act: tanh
  model.root: 3
  model.encoder.dim: "3"
  model.encoder.width: 2
"""


def test_good_values_are_bound_converted(make_ws):
    got = sucrose.scenario(make_ws(GOOD), "base").partial(Net, "model")().got
    assert got == {
        "hidden_dim": 64,
        "lr": 1.0,
        "flag": True,
        "name": "x",
        "opt": None,
        "kind": "a",
        "layers": [1, 2],
        "weights": {"a": 1.0, "b": 2.5},
        "act": Act.GELU,
        "root": Path("data/x"),
        "encoder": Enc(3, Act.RELU),
        "untyped": "anything",
    }
    assert type(got["lr"]) is float


def test_every_bad_value_reported_at_once(make_ws):
    ws = make_ws(GOOD + BAD)
    with pytest.raises(sucrose.ConfigError) as info:
        sucrose.scenario(ws, "base/bad").partial(Net, "model")
    problems = info.value.problems
    by_key = {p.split("key '", 1)[1].split("'", 1)[0]: p for p in problems}
    assert len(problems) == 12, problems
    assert set(by_key) == {
        "model.hidden_dim",
        "model.lr",
        "model.flag",
        "model.name",
        "model.opt",
        "model.kind",
        "model.layers",
        "model.weights",
        "model.act",
        "model.root",
        "model.encoder.dim",
        "model.encoder.width",
    }
    lr = by_key["model.lr"]
    assert "config.yaml:18:3: scenario 'base/bad', key 'model.lr' (set in domain 'base/bad')" in lr
    assert "parameter 'lr' of Net expects float, got '1e-3' (YAML 1.1 reads 1e-3 as a string" in lr
    assert "write 0.001 or 1.0e-3)" in lr
    assert "expects int, got '64' (a string: it is quoted in the file" in by_key["model.hidden_dim"]
    assert "YAML reads true/false, yes/no and on/off as booleans" in by_key["model.name"]
    assert "expects list[int], got 'x' at model.layers[1]" in by_key["model.layers"]
    assert "expects Literal['a', 'b'], got 'c'" in by_key["model.kind"]
    assert "got 'tanh': input should be 'relu' or 'gelu'" in by_key["model.act"]
    assert "Enc has no field 'width'" in by_key["model.encoder.width"]
    assert "config.yaml:27:3:" in by_key["model.encoder.dim"]


def test_inherited_value_names_the_domain_that_set_it(make_ws):
    ws = make_ws("base:\n  model.hidden_dim: '8'\nbase/child:\n  model.lr: 0.1\n")

    def net(hidden_dim: int, lr: float) -> None: ...

    with pytest.raises(sucrose.ConfigError, match=r"config.yaml:2:3: scenario 'base/child', key "):
        sucrose.scenario(ws, "base/child").partial(net, "model")
    with pytest.raises(sucrose.ConfigError, match=r"\(set in domain 'base'\)"):
        sucrose.scenario(ws, "base/child").partial(net, "model")


def test_opt_out_and_code_overrides_are_not_checked(make_ws):
    ssc = sucrose.scenario(make_ws(GOOD + BAD), "base/bad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = ssc.partial(Net, "model", check_types=False)
    assert part.keywords["hidden_dim"] == "64" and part.keywords["lr"] == "1e-3"

    def net(dim: int) -> int:
        return dim

    ws = make_ws("base:\n  model.dim: 1\n", name="ws2")
    assert sucrose.scenario(ws, "base").partial(net, "model", dim="7")() == "7"


def test_var_keyword_annotation_and_unresolvable_annotations(make_ws):
    ws = make_ws("base:\n  model.a: 1\n  model.b: x\n")

    def takes(**kw: int) -> None: ...

    with pytest.raises(sucrose.ConfigError, match="parameter 'b' of takes expects int, got 'x'"):
        sucrose.scenario(ws, "base").partial(takes, "model")

    def unknown(a: NotDefinedAnywhere, b: str) -> tuple[object, str]:  # type: ignore[name-defined]  # noqa: F821
        return a, b

    assert sucrose.scenario(ws, "base").partial(unknown, "model")() == (1, "x")  # not checkable: bound


class Thing:
    pass


def test_a_class_annotation_pydantic_cannot_describe_is_an_isinstance_check(make_ws):
    def build(thing: Thing) -> None: ...

    ws = make_ws("base:\n  model.thing: 3\n")
    with pytest.raises(sucrose.ConfigError, match="parameter 'thing' of build expects Thing, got 3"):
        sucrose.scenario(ws, "base").partial(build, "model")


def test_sucrose_check_target_reports_every_scenario_once(make_ws, tmp_path, monkeypatch, capsys):
    from sucrose_lightning.cli import main as cli_main

    ws = make_ws(
        "base:\n  model.in_dim: '4'\n  model.hidden_dim: 8\nbase/a:\nbase/b:\n  model.hidden_dim: 1e-3\n"
    )
    (tmp_path / "typed_target_pkg.py").write_text(
        "class MyNet:\n    def __init__(self, in_dim: int, hidden_dim: int) -> None: ...\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["-w", str(ws), "check", "--target", "model=typed_target_pkg.MyNet"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert "config.yaml:2:3: key 'model.in_dim' (set in domain 'base')" in lines[0]
    assert lines[0].endswith("(in 3 scenarios)")
    assert "config.yaml:6:3: key 'model.hidden_dim' (set in domain 'base/b')" in lines[1]
    assert lines[2] == "2 problem(s) found; checked 3 scenario(s), 0 checkpoint(s)"
    assert cli_main(["-w", str(ws), "check"]) == 0  # without a target: only references are checked
    capsys.readouterr()
    assert cli_main(["-w", str(ws), "check", "--target", "model=typed_target_pkg.Nope"]) == 2
    assert "module 'typed_target_pkg' has no 'Nope'" in capsys.readouterr().err
