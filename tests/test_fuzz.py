"""Issue 5, bad input fuzzed: random config files, domain names, keys and scenario names end
in a working scenario or a ``SucroseError``, never another exception.

Each property runs 100-200 examples; the whole file takes a few seconds. Files live in
one temporary workspace per property (hypothesis reuses it across examples).
"""

from __future__ import annotations

import contextlib
import math
import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sucrose_lightning import SucroseError, SucroseScenario, load_config
from sucrose_lightning.config import WORKSPACE_DEFAULTS, WorkspaceSettings, check_domain_name
from sucrose_lightning.layout import Layout

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)

# ------------------------------------------------------------------ strategies

_weird = ["", ".", "..", ".hid", " x", "x ", "a\\b", "c:d", "q?", "é", "\t", "a b", "workspace", "~", "$HOME"]
segment = st.one_of(
    st.sampled_from(["base", "case1", "small", "a", "b", *_weird]),
    st.text(max_size=8),
    st.text(alphabet=string.ascii_letters + "_-", min_size=100, max_size=140),  # long
)
domain_name = st.one_of(
    st.lists(segment, min_size=1, max_size=4).map("/".join),
    st.lists(segment, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
    st.text(max_size=20),
)
dotted_key = st.lists(
    st.one_of(st.sampled_from(["model", "optim", "lr", "dim", "", "x y", "é"]), st.text(max_size=5)),
    min_size=1,
    max_size=3,
).map(".".join)
config_key = st.one_of(dotted_key, dotted_key, st.integers(), st.none(), st.booleans(), st.floats())
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=8,
)
# fmt: off
setting_value = st.one_of(
    st.sampled_from(
        ["ckpts", "logs", "e", "ep", "epoch_", "_", "-", ".pt", ".ckpt", "pt", ".", "..", "a/b", "../x",
         "/abs", "", "workspace", "x y", ".hidden", "sucrose", "step", "model", ".a.b", "e1"]
    ),
    st.text(max_size=6),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
# fmt: on
workspace_body = st.dictionaries(
    st.sampled_from([*WORKSPACE_DEFAULTS, "ckpt_folder", "bogus"]), setting_value, max_size=4
)
body = st.one_of(st.none(), st.dictionaries(config_key, value, max_size=4), value)
document = st.one_of(
    st.dictionaries(domain_name, body, max_size=4),
    st.tuples(st.dictionaries(domain_name, body, max_size=3), workspace_body).map(
        lambda t: {**t[0], "workspace": t[1]}
    ),
    value,
)

# YAML text built from tricky pieces: tags that fail to construct, anchors, aliases, merge
# keys, complex keys, directives, tabs, flow style, odd indentation and control characters.
# fmt: off
_pieces = [
    "base:", "base/case1:", "workspace:", "  ckpts_folder: x", "  epoch_prefix: e", "  ckpts_extension: .pt",
    "  step_key: sucrose", "  model.dim: 3", "  model.dim: 4", "  a.b: !!int abc", "  a.b: !!float x",
    "  a.b: !!bool maybe", "  a.b: !!timestamp no", "  a.b: 2020-13-45", "  a.b: !!binary '@@'",
    "  a.b: &x [1, 2]", "  c.d: *x", "  c.d: *nope", "  <<: {m.n: 1}", "  <<: 3", "  ? [a, b]", "  : 1",
    "  a.b: !!python/object:os.system x", "  a.b: !!set {a, b}", "  a.b: !!omap [a: 1]", "%YAML 1.1",
    "---", "...", "\ta.b: 1", "   a.b: 1", "- a", "{base: {a.b: 1}}", "base: [1]", "base: 3", "'': {}",
    "/abs:", "../up:", "a//b:", "a/./b:", "? !!null", ": {}", "1: {}", "base:\n  1: 2", "  a.b: \x00",
    "  a.b: \x7f", "  a.b: '\u2028'", "  a.b: [" * 3, "  a.b: {a: {b: {c: [1]}}}", "  a.b: 1e400",
    "  a.b: !!int 0x", "  a.b: 0o19", "  a.b: .nan", "  !!int x: 1", "base/x/y:", "base/workspace:",
    "workspace/x:", "  a.b: " + "[" * 250 + "]" * 250,
]
# fmt: on
yaml_text = st.one_of(
    st.lists(st.sampled_from(_pieces), min_size=1, max_size=8).map("\n".join),
    st.text(max_size=80),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


# ------------------------------------------------------------------ the property


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a is b or a == b


def _check_workspace(ws: Path, extra_names: list[str]) -> None:
    """Load ``ws/config.yaml`` and start scenarios: each works, or raises a SucroseError."""
    try:
        cfg = load_config(ws)
    except SucroseError:
        return
    names = list(cfg.scenarios) + extra_names + ["workspace"]
    for name in names:
        try:
            ssc = SucroseScenario(ws, name, config=cfg)
        except SucroseError:
            assert name not in cfg.scenarios, f"a domain of the file was refused: {name!r}"
            continue
        assert name in cfg.scenarios
        for key, val in ssc.config.items():
            assert _same(ssc[key], val)
            assert ssc.origin(key) in ssc.chain
            assert key in ssc
        # the scenario's folders stay inside the workspace
        for folder in (ssc.ckpts_dir, ssc.logs_dir):
            assert os.path.commonpath([os.path.normpath(folder), str(ws)]) == str(ws)
            assert os.path.normpath(folder) != str(ws)
        # checkpoint names round-trip through parse
        layout = ssc.layout
        assert layout.parse(layout.ckpt_name(12)) == (12, None)
        assert layout.parse(layout.ckpt_name(3, 1500)) == (3, 1500)
        assert layout.parse(layout.temp_path(layout.ckpt_path(3)).name) is None
        # nothing on disk yet: reading works and does not create folders
        assert ssc.last_epoch == 0
        assert ssc.last_ckpt() is None
        with contextlib.suppress(SucroseError):
            ssc["no.such.key"]


@pytest.fixture(scope="module")
def fuzz_ws():
    with tempfile.TemporaryDirectory(prefix="sucrose_fuzz_") as tmp:
        yield Path(tmp)


@FUZZ
@given(doc=document, extra=st.lists(domain_name, max_size=2), flow=st.booleans(), uni=st.booleans())
def test_random_structures_give_a_scenario_or_a_sucrose_error(fuzz_ws, doc, extra, flow, uni):
    text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=uni, sort_keys=False)
    (fuzz_ws / "config.yaml").write_text(text, encoding="utf-8")
    _check_workspace(fuzz_ws, extra)


@FUZZ
@given(text=yaml_text, extra=st.lists(domain_name, max_size=2))
def test_random_yaml_text_gives_a_scenario_or_a_sucrose_error(fuzz_ws, text, extra):
    (fuzz_ws / "config.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    _check_workspace(fuzz_ws, extra)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.binary(max_size=60))
def test_random_bytes_give_a_sucrose_error_or_a_config(fuzz_ws, data):
    (fuzz_ws / "config.yaml").write_bytes(data)
    _check_workspace(fuzz_ws, [])


# ------------------------------------------------------------------ names and layout

valid_segment = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters='\\/<>:"|?*'
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith(".") and s.strip() == s)
valid_name = (
    st.lists(valid_segment, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda n: check_domain_name(n) is None and n.split("/")[0] != "workspace")
)
DOT = "."
prefix = st.from_regex(r"[A-Za-z_-]{1,6}", fullmatch=True)
extension = st.from_regex(r"\.[A-Za-z0-9_.-]{1,6}", fullmatch=True)


@settings(max_examples=200, deadline=None, database=None)
@given(
    name=valid_name,
    epochs=st.integers(0, 10**9),
    step=st.none() | st.integers(0, 10**12),
    pre=prefix,
    ext=extension,
    other_ext=extension,
)
def test_layout_parse_round_trips(name, epochs, step, pre, ext, other_ext):
    layout = Layout(Path("/ws"), name, WorkspaceSettings(epoch_prefix=pre, ckpts_extension=ext))
    assert layout.parse(layout.ckpt_name(epochs, step)) == (epochs, step)
    assert layout.parse(layout.ckpt_name(epochs, step, other_ext), other_ext) == (epochs, step)
    if other_ext != ext:
        assume(not layout.ckpt_name(epochs, step, other_ext).endswith(ext))
        assert layout.parse(layout.ckpt_name(epochs, step, other_ext)) is None
    assert layout.parse(layout.temp_path(layout.ckpt_path(epochs, step)).name) is None
    assert layout.parse(layout.ckpt_name(epochs, step) + ".tmp") is None
    # another scenario's files never parse as this one's
    other = Layout(Path("/ws"), name + "x", WorkspaceSettings(epoch_prefix=pre, ckpts_extension=ext))
    assert layout.parse(other.ckpt_name(epochs, step)) is None


@settings(max_examples=80, deadline=None, database=None)
@given(
    name=st.one_of(
        valid_name,
        st.lists(st.text(alphabet="abc_-", min_size=40, max_size=130), min_size=1, max_size=3).map("/".join),
        domain_name,
    ),
    pre=st.one_of(prefix, st.text(alphabet="ab_", min_size=14, max_size=20), setting_value),
    ext=st.one_of(
        extension, st.text(alphabet="pt", min_size=13, max_size=20).map(DOT.__add__), setting_value
    ),
)
def test_random_names_and_settings_save_and_reload_or_refuse(fuzz_ws, name, pre, ext):
    """A scenario that starts (random name, random layout settings) can save and reload its
    checkpoints: names that could not be saved (too long for the filesystem, ...) are refused
    when the scenario starts, not after its first epoch of training."""
    ws = fuzz_ws / "save"
    ws.mkdir(exist_ok=True)
    settings_doc = {"epoch_prefix": pre, "ckpts_extension": ext}
    (ws / "config.yaml").write_text(
        yaml.safe_dump({"workspace": settings_doc, name: {"model.dim": 3}}, allow_unicode=True)
    )
    try:
        ssc = SucroseScenario(ws, name)
    except SucroseError:
        return
    try:
        path = ssc.save_state_dict(1, state={"w": 1})
    finally:
        ssc.close()
    assert path is not None and path.is_file()
    again = SucroseScenario(ws, name)
    assert again.last_epoch == 1
    assert again.load_state_dict() == {"state": {"w": 1}}
    os.remove(path)


@settings(max_examples=40, deadline=None, database=None)
@given(
    segments=st.lists(st.integers(40, 130).map("s".__mul__), min_size=1, max_size=3),
    pre=st.integers(1, 24).map("e".__mul__),
    ext=st.integers(1, 24).map("p".__mul__).map(".".__add__),
)
def test_long_names_are_refused_at_start_or_saved(fuzz_ws, segments, pre, ext):
    """The same property, aimed at the filesystem's 255-byte limit on a file name."""
    test_random_names_and_settings_save_and_reload_or_refuse.hypothesis.inner_test(
        fuzz_ws, "/".join(segments), pre, ext
    )


# ------------------------------------------------------------------ what the fuzzing found


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("base:\n  a.b: 2020-13-45\n", ":2:8:", "as timestamp (month must be in 1..12); quote it"),
        ("base:\n  a.b: !!int abc\n", ":2:8:", "'abc' as int"),
        ("base:\n  a.b: !!bool maybe\n", ":2:8:", "'maybe' as bool"),
        ("base:\n  a.b: !!timestamp no\n", ":2:8:", "'no' as timestamp"),
        ("x: {}\nbase:\n  c.d: [1, {e: !!float x}]\n", ":3:16:", "'x' as float"),
        ("base:\n  a.b: " + "[" * 300 + "]" * 300 + "\n", ":2:3:", "nested too deeply"),
        ("base: !!set {a, b}\n", ":1:7:", "body of domain 'base' must be a mapping"),
        ("workspace:\n  step_key: sucrose\nbase:\n", ":1:1:", "step_key 'sucrose' is reserved"),
        ("workspace:\n  ckpts_extension: .ckpt\nbase:\n", ":1:1:", "must differ"),
        ("workspace:\n  epoch_prefix: " + "e" * 17 + "\nbase:\n", ":1:1:", "at most 16"),
        ("a" * 151 + ":\n", ":1:1:", "151 bytes long; at most 150"),
    ],
)
def test_inputs_that_escaped_as_other_exceptions_now_name_the_spot(tmp_path, text, where, says):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(SucroseError) as info:
        load_config(tmp_path)
    assert f"config.yaml{where}" in str(info.value)
    assert says in str(info.value)
