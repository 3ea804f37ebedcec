"""Config values checked against a callable's type annotations, before anything is built.

``int``, ``float``, ``str`` and ``bool`` are checked here directly (the common case, and no
import). Every other annotation (``Optional``, ``Literal``, ``list[int]``, ``dict[str, float]``,
enums, paths, dataclasses...) goes through pydantic's ``TypeAdapter`` in strict JSON mode: it
reads a value the way YAML wrote it, so a string becomes a ``Path`` or an enum member, a mapping
a dataclass, an int a float, while a string never becomes a number and ``true`` never an int.
The converted value is what gets bound. An annotation pydantic cannot handle (an arbitrary
class such as ``torch.nn.Module``) is checked with ``isinstance`` when it is a class, else not.

This module imports neither torch nor lightning, and pydantic only when needed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .values import plain

__all__ = ["check_binding", "resolved_signature", "type_text"]

# annotation -> the exact value types accepted (bool is not an int here; an int is a float)
_SIMPLE: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
_NUMBER = re.compile(r"\b(?:int|float)\b")
_YAML11_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def resolved_signature(fn: Callable[..., Any], sig: inspect.Signature) -> inspect.Signature:
    """``sig`` with string annotations (``from __future__ import annotations``) evaluated.

    An annotation that cannot be evaluated is left as a string, and is then not checked.
    """
    if not any(isinstance(p.annotation, str) for p in sig.parameters.values()):
        return sig
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # a name only imported under TYPE_CHECKING, say
        return sig


def type_text(ann: Any) -> str:
    """A readable annotation: ``int``, ``list[int]``, ``Optional[float]``.

    Examples:
        >>> type_text(int), type_text(list[int]), type_text(typing.Optional[float])
        ('int', 'list[int]', 'Optional[float]')
    """
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    return str(ann).replace("typing.", "").replace("pathlib.", "")


@functools.lru_cache(maxsize=256)
def _adapter(ann: Any) -> Any:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(ann)
    except Exception:  # pydantic cannot describe it (an arbitrary class, a Callable...)
        return None


def _how_yaml_read(value: Any, expected: Any) -> str:
    """Why a value has the type it has, for the mistakes YAML makes easy."""
    wants_number = _NUMBER.search(type_text(expected)) is not None
    if isinstance(value, str) and wants_number:
        if _YAML11_FLOAT.fullmatch(value.strip()):
            mantissa, exponent = value.strip().lower().split("e")
            mantissa += "" if "." in mantissa else ".0"
            exponent = exponent if exponent[0] in "+-" else "+" + exponent
            return (
                f" (YAML 1.1 reads {value} as a string: a float needs a dot and a signed exponent; "
                f"write {float(value)!r} or {mantissa}e{exponent})"
            )
        try:
            float(value)
        except ValueError:
            return ""
        return " (a string: it is quoted in the file; remove the quotes)"
    if isinstance(value, bool) and expected is not bool:
        return " (YAML reads true/false, yes/no and on/off as booleans; quote it to keep it as text)"
    return ""


def _unknown_fields(ann: Any, value: Any, loc: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Keys of a mapping for a dataclass that name no field (pydantic would drop them silently)."""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return _unknown_fields(args[0], value, loc) if len(args) == 1 else []
    if not (dataclasses.is_dataclass(ann) and isinstance(ann, type) and isinstance(value, dict)):
        return []
    fields = {f.name: f for f in dataclasses.fields(ann)}
    try:
        hints = typing.get_type_hints(ann)
    except Exception:
        hints = {}
    out: list[tuple[tuple[Any, ...], str]] = []
    for key, sub in value.items():
        if key not in fields:
            out.append(
                ((*loc, key), f"{ann.__name__} has no field {key!r} (its fields: {', '.join(fields)})")
            )
        else:
            out.extend(_unknown_fields(hints.get(key, fields[key].type), sub, (*loc, key)))
    return out


def _check_one(ann: Any, value: Any) -> tuple[Any, list[tuple[tuple[Any, ...], Any, str]]]:
    """``(converted value, [(location inside the value, the bad part, what is wrong there)])``."""
    if ann is inspect.Parameter.empty or ann is Any or isinstance(ann, str):
        return value, []
    simple = _SIMPLE.get(ann)
    if simple is not None:
        if type(value) in simple:
            return (float(value) if ann is float else value), []
        return value, [((), value, "")]
    adapter = _adapter(ann) if _hashable(ann) else None
    if adapter is None:
        if isinstance(ann, type) and not isinstance(value, ann):
            return value, [((), value, "")]
        return value, []
    from pydantic import ValidationError

    unknown = [(loc, _part(value, loc), why) for loc, why in _unknown_fields(ann, value)]
    try:
        converted = adapter.validate_json(json.dumps(plain(value)), strict=True)
    except ValidationError as err:
        bad = []
        for e in err.errors():
            loc = tuple(e["loc"])
            bad.append((loc, _part(value, loc), e["msg"][0].lower() + e["msg"][1:]))
        return value, bad + unknown
    return converted, unknown


def _hashable(ann: Any) -> bool:
    try:
        hash(ann)
    except TypeError:
        return False
    return True


def _part(value: Any, loc: tuple[Any, ...]) -> Any:
    for step in loc:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return value
    return value


def check_binding(
    fn_name: str,
    sig: inspect.Signature,
    kwargs: Mapping[str, Any],
    keys: Mapping[str, str],
    describe: Callable[[str], str],
    known: Collection[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """Check each bound value against its parameter's annotation.

    Args:
        fn_name: the callable's name, for the messages.
        sig: its signature (string annotations evaluated, see :func:`resolved_signature`).
        kwargs: parameter name -> the bound config value.
        keys: parameter name -> the config key it came from (for a parameter bound from nested
            keys such as ``model.encoder.dim``, the prefix ``model.encoder``).
        describe: config key -> ``"file:line:column: key 'k' (set in domain 'd')"`` (it may be
            given a nested prefix such as ``model.encoder`` that is no key itself).
        known: the config's keys, to name ``model.encoder.dim`` rather than ``model.encoder``
            for a bad value inside a parameter bound from nested keys.

    Returns:
        The values to bind (converted where the annotation asks: ``Path``, enum members,
        dataclasses, floats) and one problem per bad value (empty when all are fine).

    Examples:
        >>> def net(dim: int, lr: float = 0.1): ...
        >>> sig = resolved_signature(net, inspect.signature(net))
        >>> ok, problems = check_binding("net", sig, {"dim": "64", "lr": 1}, {"dim": "model.dim"}, str)
        >>> ok["lr"], len(problems)
        (1.0, 1)
        >>> print(problems[0].replace(", got", ",\\ngot"))
        model.dim: parameter 'dim' of net expects int,
        got '64' (a string: it is quoted in the file; remove the quotes)
    """
    params = sig.parameters
    var_kw = next((p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    out = dict(kwargs)
    problems: list[str] = []
    for name, value in kwargs.items():
        param = params.get(name, var_kw)
        if param is None:
            continue
        converted, bad = _check_one(param.annotation, value)
        out[name] = converted
        key = keys.get(name, name)
        for loc, part, why in bad:
            shown = key + "".join(f".{s}" if isinstance(s, str) else f"[{s!r}]" for s in loc)
            real = _nearest_key(key, loc, known)
            at = f" at {shown}" if shown != real else ""
            problems.append(
                f"{describe(real)}: parameter {name!r} of {fn_name} expects {type_text(param.annotation)}, "
                f"got {part!r}{at}{_how_yaml_read(part, param.annotation)}" + (f": {why}" if why else "")
            )
    return out, problems


def _nearest_key(key: str, loc: tuple[Any, ...], known: Collection[str]) -> str:
    """The deepest config key a location inside a nested value maps to (``model.encoder.dim``)."""
    out = key
    for step in loc:
        if not isinstance(step, str) or f"{out}.{step}" not in known:
            break
        out = f"{out}.{step}"
    return out
