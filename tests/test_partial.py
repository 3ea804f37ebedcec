"""ssc.partial: which config keys a callable takes, and how mistakes are reported."""

from __future__ import annotations

import functools
import pickle
import warnings

import pytest

import sucrose_lightning as sucrose

CONFIG = """
base:
  model.input_dim: 200
  model.hidden_dim: 100
  model.output_dim: 10
  model_ema.decay: 0.99
  model.encoder.dim: 64
  model.encoder.depth: 2
  optim.lr: 0.1
"""


class ExampleModule:
    def __init__(self, input_dim, hidden_dim, output_dim=1):
        self.args = (input_dim, hidden_dim, output_dim)


class Child(ExampleModule):  # inherits __init__
    pass


@pytest.fixture
def ssc(make_ws):
    return sucrose.scenario(make_ws(CONFIG), "base")


def test_seed_example_equivalent_to_functools_partial(ssc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = ssc.partial(ExampleModule, "model")
    assert isinstance(part, functools.partial)
    assert part.keywords == {"input_dim": 200, "hidden_dim": 100, "output_dim": 10}
    model = part()
    assert model.args == functools.partial(ExampleModule, input_dim=200, hidden_dim=100, output_dim=10)().args


def test_inherited_init_and_prefix_ends_at_dot(ssc):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # model_ema.* and model.encoder.* are not unknown keys
        part = ssc.partial(Child, "model")
    assert part.keywords == {"input_dim": 200, "hidden_dim": 100, "output_dim": 10}
    assert part().args == (200, 100, 10)


def test_nested_prefix_goes_to_parameter_as_dict(ssc):
    def build(input_dim, encoder=None):
        return input_dim, encoder

    with pytest.warns(sucrose.SucroseConfigWarning):
        part = ssc.partial(build, "model")
    assert part() == (200, {"dim": 64, "depth": 2})


def test_nested_prefix_itself(ssc):
    def encoder(dim, depth):
        return dim * depth

    assert ssc.partial(encoder, "model.encoder")() == 128


def test_explicit_key_beats_nested_dict(make_ws):
    ssc = sucrose.scenario(make_ws("base:\n  m.enc: plain\n  m.enc.dim: 3\n"), "base")

    def f(enc):
        return enc

    assert ssc.partial(f, "m")() == "plain"


def test_var_kwargs_receive_every_direct_key(ssc):
    def f(**kw):
        return kw

    assert ssc.partial(f, "model")() == {"input_dim": 200, "hidden_dim": 100, "output_dim": 10}


def test_unknown_key_warns_once_with_did_you_mean(make_ws):
    text = "base:\n  model.input_dim: 1\n  model.hiden_dim: 2\n  model.zzz: 3\n"
    ssc = sucrose.scenario(make_ws(text), "base")

    class MyNet:
        def __init__(self, input_dim, hidden_dim=5):
            pass

    with pytest.warns(sucrose.SucroseConfigWarning) as rec:
        ssc.partial(MyNet, "model")
    assert len(rec) == 1
    text = str(rec[0].message)
    assert "model.hiden_dim: no parameter 'hiden_dim' of MyNet; did you mean 'hidden_dim'?" in text
    assert "model.zzz" in text
    with pytest.raises(sucrose.SucroseError, match="hiden_dim"):
        ssc.partial(MyNet, "model", strict=True)


def test_missing_required_parameter_is_named(ssc):
    def f(input_dim, dropout):
        return input_dim, dropout

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = ssc.partial(f, "model")
    with pytest.raises(sucrose.SucroseError) as err:
        part()
    assert "'dropout'" in str(err.value) and "model." in str(err.value)
    assert part(dropout=0.5) == (200, 0.5)


def test_call_time_keywords_win(ssc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = ssc.partial(ExampleModule, "model", output_dim=3)
    assert part.keywords["output_dim"] == 3
    assert part(hidden_dim=7).args == (200, 7, 3)


def test_partial_is_picklable(ssc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = ssc.partial(ExampleModule, "model")
    again = pickle.loads(pickle.dumps(part))
    assert again().args == part().args


def test_unused_keys_tracks_reads(ssc):
    assert "optim.lr" in ssc.unused_keys()
    ssc["optim.lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ssc.partial(ExampleModule, "model")
    unused = ssc.unused_keys()
    assert "optim.lr" not in unused and "model.input_dim" not in unused
    assert "model_ema.decay" in unused and "model.encoder.dim" in unused


def test_uninspectable_callable_is_a_sucrose_error(ssc):
    class Weird:
        __signature__ = "not a signature"

        def __call__(self):
            pass

    with pytest.raises(sucrose.SucroseError, match="cannot be inspected"):
        ssc.partial(Weird(), "model")


def test_nested_keys_of_another_prefix_are_not_unknown(make_ws):
    text = "base:\n  model.dim: 1\n  model.layers: 2\n  model.layer.width: 3\n"
    ssc = sucrose.scenario(make_ws(text), "base")

    def net(dim, layers):
        return dim, layers

    def layer(width):
        return width

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # model.layer.* belongs to prefix model.layer, close name or not
        assert ssc.partial(net, "model", strict=True)() == (1, 2)
    assert ssc.partial(layer, "model.layer", strict=True)() == 3
    assert ssc.unused_keys() == []
