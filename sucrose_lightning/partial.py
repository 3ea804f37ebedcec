"""Signature-aware ``functools.partial``: bind the config keys a callable takes.

``bind_config(fn, "model", values)`` looks at ``fn``'s parameters (for a class,
``inspect.signature(cls)``, so an inherited ``__init__`` works) and binds each
``model.<name>`` key whose ``<name>`` is a parameter. The prefix ends at a dot:
``model`` never takes ``model_ema.decay``. Deeper keys (``model.encoder.dim``)
belong to the nested prefix ``model.encoder``; a parameter ``encoder`` with no
``model.encoder`` key receives them as a dict ``{"dim": ...}``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._types import check_binding, resolved_signature
from .errors import ConfigError, SucroseConfigWarning, SucroseError, did_you_mean

__all__ = ["Binding", "ConfigPartial", "bind_config", "callable_name"]


def callable_name(fn: Any) -> str:
    """A readable name for ``fn`` (``MyNet``, ``make_model``)."""
    return getattr(fn, "__name__", None) or type(fn).__name__


@dataclass
class Binding:
    """What :func:`bind_config` found for one callable and prefix.

    Attributes:
        kwargs: parameter name -> value taken from the config.
        used: the full config keys that were bound.
        unknown: direct keys under the prefix that match no parameter (nested keys such as
            ``model.encoder.dim`` belong to their own prefix and are never unknown here).
        names: the part of each unknown key that should have named a parameter.
        hints: one did-you-mean text per unknown key ("" when none is close).
        signature: ``fn``'s signature, as inspected once for the binding.
    """

    signature: inspect.Signature | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as err:
        raise SucroseError(
            f"cannot bind config keys to {callable_name(fn)}: its parameters cannot be inspected "
            f"({err}); wrap it in a function with named parameters"
        ) from None


def bind_config(fn: Callable[..., Any], prefix: str, values: Mapping[str, Any]) -> Binding:
    """Find the config keys under ``prefix`` that ``fn`` takes.

    Args:
        fn: a function or class.
        prefix: a dotted prefix such as ``"model"`` or ``"model.encoder"``; ``""`` means the
            top-level keys.
        values: the merged config.

    Returns:
        A :class:`Binding`.

    Examples:
        >>> def net(dim, depth=2): ...
        >>> b = bind_config(net, "model", {"model.dim": 8, "model.dimm": 1, "model_ema.x": 0})
        >>> b.kwargs, b.unknown
        ({'dim': 8}, ['model.dimm'])
    """
    sig = _signature(fn)
    params = {
        name: p
        for name, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    head = f"{prefix}." if prefix else ""
    cut = len(head)
    direct: dict[str, str] = {}  # name -> full key
    nested: dict[str, dict[str, Any]] = {}  # first part -> {rest: value}
    nested_keys: dict[str, list[str]] = {}
    for key, value in values.items():
        if not key.startswith(head):
            continue
        rest = key[cut:]
        first, dot, deeper = rest.partition(".")
        if dot:
            nested.setdefault(first, {})[deeper] = value
            nested_keys.setdefault(first, []).append(key)
        else:
            direct[rest] = key
    out = Binding(signature=sig)
    for name, key in direct.items():
        if name in params or takes_any:
            out.kwargs[name] = values[key]
            out.used.append(key)
        else:
            out.unknown.append(key)
            out.names.append(name)
            out.hints.append(did_you_mean(name, params, n=1))
    for name, sub in nested.items():  # other nested keys belong to their own prefix: not unknown
        if name in params and name not in direct:
            out.kwargs[name] = sub
            out.used.extend(nested_keys[name])
    return out


class ConfigPartial(functools.partial):  # type: ignore[type-arg]
    """A real :class:`functools.partial` that names missing parameters clearly when called.

    ``.keywords`` shows what the config bound; keyword arguments given at call time win.
    """

    _sucrose_where: str = ""
    _sucrose_signature: inspect.Signature | None = None  # inspected once, by make_partial

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        sig = self._sucrose_signature
        if sig is not None:
            given = {**self.keywords, **kwargs}
            try:
                bound = sig.bind_partial(*self.args, *args, **given)
            except TypeError as err:
                raise SucroseError(f"cannot call {callable_name(self.func)}(): {err}") from None
            missing = [
                name
                for name, p in sig.parameters.items()
                if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
                and name not in bound.arguments
            ]
            if missing:
                names = ", ".join(repr(m) for m in missing)
                raise SucroseError(
                    f"{callable_name(self.func)}() is missing required parameter(s) {names}: "
                    f"not set {self._sucrose_where} and not given at call time; add them to "
                    "config.yaml or pass them as keyword arguments"
                )
        return super().__call__(*args, **kwargs)


def make_partial(
    fn: Callable[..., Any],
    prefix: str,
    values: Mapping[str, Any],
    *,
    where: str,
    strict: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
    stacklevel: int = 3,
    check_types: bool = True,
    describe: Callable[[str], str] = str,
    path: str = "config.yaml",
) -> tuple[ConfigPartial, Binding]:
    """Bind ``fn`` to the config and return the partial and what was bound.

    ``where`` describes the config searched (used in messages). Unknown keys under the
    prefix give one :class:`SucroseConfigWarning`, or a :class:`SucroseError` with ``strict``.
    ``strict`` given (not ``None``) for an ``fn`` with its own ``strict`` parameter is refused
    as ambiguous: that one is passed at call time.

    With ``check_types``, each value taken from the config is checked against its
    parameter's annotation (see :mod:`sucrose_lightning._types`) and bound converted; every
    bad value of the call is reported in one :class:`ConfigError` (``path`` is the config
    file; ``describe(key)`` says where a key is set). Values in ``overrides`` are not checked.
    """
    binding = bind_config(fn, prefix, values)
    if check_types and binding.kwargs and binding.signature is not None:
        head = f"{prefix}." if prefix else ""
        converted, problems = check_binding(
            callable_name(fn),
            resolved_signature(fn, binding.signature),
            binding.kwargs,
            {name: head + name for name in binding.kwargs},
            describe,
            values,
        )
        if problems:
            raise ConfigError(path, problems)
        binding.kwargs = converted
    if strict is not None and binding.signature is not None and "strict" in binding.signature.parameters:
        raise SucroseError(
            f"{callable_name(fn)} has its own parameter 'strict', so ssc.partial(..., strict=...) is "
            "ambiguous; pass it at call time instead: ssc.partial(fn, prefix)(strict=...)"
        )
    if binding.unknown:
        lines = [
            f"{key}: no parameter {name!r} of {callable_name(fn)}{hint}"
            for key, name, hint in zip(binding.unknown, binding.names, binding.hints, strict=True)
        ]
        text = f"config keys {where} that {callable_name(fn)} does not take:\n  " + "\n  ".join(lines)
        if strict:
            raise SucroseError(text + "\nRemove or rename them, or pass strict=False.")
        warnings.warn(text, SucroseConfigWarning, stacklevel=stacklevel)
    kwargs = {**binding.kwargs, **(overrides or {})}
    part = ConfigPartial(fn, **kwargs)
    part._sucrose_where = where
    part._sucrose_signature = binding.signature
    return part, binding
