"""config.yaml: domains, inheritance, the workspace domain, and every error reported together."""

from __future__ import annotations

import hashlib

import pytest

import sucrose_lightning as sucrose
from sucrose_lightning.config import check_domain_name, load_config


def test_seed_inheritance_and_override(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    assert ssc["model.input_dim"] == 200
    assert ssc["model.hidden_dim"] == 100
    assert ssc.origin("model.input_dim") == "base/case1"
    assert ssc.origin("model.hidden_dim") == "base"
    assert ssc.chain == ("base/case1", "base")
    base = sucrose.scenario(seed_ws, "base")
    assert base["model.input_dim"] == 100
    assert base.chain == ("base",)


def test_three_levels_with_missing_middle(make_ws):
    ws = make_ws(
        """
        base:
          a: 1
          b: 1
          c: 1
        base/case1:
          b: 2
        base/case1/x/small:
          c: 3
        """
    )
    ssc = sucrose.scenario(ws, "base/case1/x/small")
    assert ssc.chain == ("base/case1/x/small", "base/case1", "base")
    assert (ssc["a"], ssc["b"], ssc["c"]) == (1, 2, 3)
    assert [ssc.origin(k) for k in "abc"] == ["base", "base/case1", "base/case1/x/small"]


def test_empty_body_inherits_everything_and_values_stay_values(make_ws):
    ws = make_ws(
        """
        base:
          model.layers: [1, 2, 3]
          model.opts: {a: 1}
          model.name: null
        base/test2:
        """
    )
    ssc = sucrose.scenario(ws, "base/test2")
    assert ssc["model.layers"] == [1, 2, 3]
    assert ssc["model.opts"] == {"a": 1}
    assert ssc["model.name"] is None
    assert ssc.get("nope", 7) == 7
    assert "model.layers" in ssc and "nope" not in ssc


def test_config_view_is_read_only_and_config_of(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    with pytest.raises(TypeError):
        ssc.config["model.input_dim"] = 1  # type: ignore[index]
    assert ssc.config_of("model") == {"input_dim": 200, "hidden_dim": 100, "output_dim": 100}
    assert dict(ssc.config) == {"model.input_dim": 200, "model.hidden_dim": 100, "model.output_dim": 100}


def test_merge_happens_once(seed_ws, monkeypatch):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    calls = []
    monkeypatch.setattr(type(ssc.config_file), "chain", lambda *a: calls.append(a) or ())
    for _ in range(3):
        assert ssc["model.input_dim"] == 200
    assert calls == []  # a lookup never walks the chain again


def test_workspace_domain_settings_and_not_a_scenario(make_ws):
    ws = make_ws(
        """
        workspace:
          ckpts_folder: checkpoints
          logs_folder: tb
          epoch_prefix: epoch
          ckpts_extension: .pth
        base:
          a: 1
        """
    )
    ssc = sucrose.scenario(ws, "base")
    assert ssc.ckpts_dir == ws / "checkpoints" / "base"
    assert ssc.logs_dir == ws / "tb" / "base"
    assert ssc.layout.ckpt_name(3) == "base_epoch3.pth"
    assert "ckpts_folder" not in ssc
    with pytest.raises(sucrose.DomainNotFoundError, match="layout settings"):
        sucrose.scenario(ws, "workspace")


def test_defaults_without_workspace_domain(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    assert ssc.ckpts_dir == seed_ws / "ckpts" / "base" / "case1"
    assert ssc.logs_dir == seed_ws / "logs" / "base" / "case1"
    assert ssc.layout.ckpt_name(10) == "base_case1_e10.pt"


# ---------------------------------------------------------------- errors


def test_missing_config_names_the_path(tmp_path):
    with pytest.raises(sucrose.ConfigError) as err:
        sucrose.scenario(tmp_path / "nowhere", "base")
    assert str(tmp_path / "nowhere" / "config.yaml") in str(err.value)


def test_yaml_syntax_error_has_file_line_column(make_ws):
    ws = make_ws("base:\n  a: [1, 2\n  b: 3\n")
    with pytest.raises(sucrose.ConfigError) as err:
        sucrose.scenario(ws, "base")
    assert f"{ws / 'config.yaml'}:" in str(err.value)
    assert "YAML syntax error" in str(err.value)
    assert ":3:" in str(err.value) or ":2:" in str(err.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "top level must map domain names"),
        ("just a string\n", "top level must map domain names"),
        ("base: 3\n", "body of domain 'base' must be a mapping"),
        ("base: [1, 2]\n", "body of domain 'base' must be a mapping"),
        ("base:\n  a: 1\n  a: 2\n", "duplicate key 'a'"),
        ("base:\n  a: 1\nbase:\n  b: 2\n", "duplicate key 'base'"),
        ("base/:\n  a: 1\n", "trailing '/'"),
        ("/abs:\n  a: 1\n", "leading '/'"),
        ("a//b:\n  a: 1\n", "empty segment"),
        ("a/../b:\n  a: 1\n", "segment '..'"),
        ("a/./b:\n  a: 1\n", "segment '.'"),
        ("'a\\\\b':\n  a: 1\n", "backslash"),
        ("'':\n  a: 1\n", "empty"),
        ("1:\n  a: 1\n", "must be strings"),
        ("workspace/x:\n  a: 1\n", "reserved"),
        ("workspace:\n  ckpt_folder: x\n", "did you mean 'ckpts_folder'"),
        ("workspace:\n  ckpts_folder: ../out\n", "inside the workspace"),
        ("workspace:\n  ckpts_folder: /abs\n", "inside the workspace"),
        ("workspace:\n  ckpts_extension: pt\n", "must look like '.pt'"),
        ("base:\n  model..x: 1\n", "empty part"),
        ("base:\n  3: 1\n", "keys must be strings"),
    ],
)
def test_config_errors_name_the_culprit(make_ws, text, fragment):
    ws = make_ws(text)
    with pytest.raises(sucrose.ConfigError) as err:
        load_config(ws)
    assert fragment in str(err.value)
    assert str(ws / "config.yaml") in str(err.value)


def test_all_problems_reported_together(make_ws):
    ws = make_ws(
        """
        base:
          a: 1
          a: 2
        ../evil:
          x: 1
        good: 3
        workspace:
          logs_foldr: x
        """
    )
    with pytest.raises(sucrose.ConfigError) as err:
        load_config(ws)
    problems = err.value.problems
    assert len(problems) == 4, problems
    text = str(err.value)
    assert "4 problems" in text
    for fragment in ("duplicate key 'a'", "'../evil'", "domain 'good'", "logs_foldr"):
        assert fragment in text
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_unknown_scenario_is_refused_with_suggestion(seed_ws):
    with pytest.raises(sucrose.DomainNotFoundError) as err:
        sucrose.scenario(seed_ws, "base/cas1")
    text = str(err.value)
    assert "'base/cas1'" in text and "did you mean 'base/case1'" in text
    assert "inherits everything from 'base'" in text
    assert not (seed_ws / "ckpts").exists()


def test_bad_scenario_name_is_refused(seed_ws):
    with pytest.raises(sucrose.DomainNotFoundError, match=r"segment '\.\.'"):
        sucrose.scenario(seed_ws, "base/../../etc")


def test_missing_key_is_keyerror_listing_domains_and_close_keys(seed_ws):
    ssc = sucrose.scenario(seed_ws, "base/case1")
    with pytest.raises(KeyError) as err:
        ssc["model.hiden_dim"]
    assert isinstance(err.value, sucrose.MissingKeyError)
    assert isinstance(err.value, sucrose.SucroseError)
    text = str(err.value)
    assert "'model.hiden_dim'" in text
    assert "base/case1 -> base" in text
    assert "did you mean 'model.hidden_dim'" in text
    with pytest.raises(sucrose.MissingKeyError, match="nope"):
        ssc.origin("nope")


@pytest.mark.parametrize("name", ["a", "a/b", "a b/c-d_e.f", "ünï/cödé"])
def test_good_domain_names(name):
    assert check_domain_name(name) is None


def test_empty_file_has_no_scenarios(make_ws):
    ws = make_ws("")
    with pytest.raises(sucrose.DomainNotFoundError, match="not a domain"):
        sucrose.scenario(ws, "base")


def test_config_hash(make_ws):
    ws = make_ws("base:\n  a: 1\nbase/x:\n  a: 2\n")
    cfg = load_config(ws)
    assert cfg.sha256 == hashlib.sha256((ws / "config.yaml").read_bytes()).hexdigest()


def test_unbuildable_value_does_not_hide_other_domains_problems(make_ws):
    ws = make_ws("base:\n  a.b: 2020-13-45\nother:\n  x: 1\n  x: 2\n../bad:\n")
    with pytest.raises(sucrose.ConfigError) as err:
        load_config(ws)
    text = str(err.value)
    assert "config.yaml:2:8:" in text and "quote it" in text
    assert "duplicate key 'x'" in text and "'../bad'" in text
