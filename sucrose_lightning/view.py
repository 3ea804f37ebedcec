"""The merged config of one domain: lookups, provenance, hyperparameters and ``partial``.

:class:`ConfigView` is what a scenario reads its config through: ``ssc[key]``, ``ssc.get``,
``ssc.config_of(prefix)``, ``ssc.origin(key)``, ``ssc.hparams()``, ``ssc.partial(fn, prefix)``
and the keys never read. The domain's chain is merged once, at construction; a lookup is then
one dict access. It imports neither torch nor lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .config import Config, plain, under_prefix
from .errors import MissingKeyError, did_you_mean
from .partial import ConfigPartial, make_partial

__all__ = ["ConfigView"]


class ConfigView:
    """The merged config of domain ``name`` of a parsed config file, with its provenance.

    Args:
        config: the parsed ``config.yaml``.
        name: one of its domains.

    Raises:
        DomainNotFoundError: ``name`` is not a domain of the file (close names suggested).

    Examples:
        >>> view = ConfigView(sucrose.load_config(ws), "base/case1")
        >>> view["model.input_dim"], view.origin("model.hidden_dim"), view.chain
        (200, 'base', ('base/case1', 'base'))
    """

    def __init__(self, config: Config, name: str) -> None:
        config.require(name)
        self._cfg = config
        self._name = name
        self._chain = config.chain(name)
        self._values, self._origins = config.merged(name)
        self._read: set[str] = set()

    @property
    def name(self) -> str:
        """The scenario (domain) name, e.g. ``"base/case1"``."""
        return self._name

    @property
    def config_file(self) -> Config:
        """The parsed config file (all domains, settings and hash)."""
        return self._cfg

    @property
    def chain(self) -> tuple[str, ...]:
        """The domains searched for a key, child first: ``('base/case1', 'base')``."""
        return self._chain

    @property
    def config(self) -> Mapping[str, Any]:
        """The merged config as a read-only mapping (reading it does not mark keys as used)."""
        return MappingProxyType(self._values)

    def _missing(self, key: str) -> MissingKeyError:
        searched = " -> ".join(self._chain)
        return MissingKeyError(
            f"key {key!r} is not set for scenario {self._name!r} (domains searched: {searched} "
            f"in {self._cfg.path}){did_you_mean(str(key), self._values)}"
        )

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._values[key]
        except (KeyError, TypeError):
            raise self._missing(key) from None
        self._read.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``ssc[key]`` if set, else ``default``."""
        try:
            value = self._values[key]
        except (KeyError, TypeError):
            return default
        self._read.add(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def config_of(self, prefix: str) -> dict[str, Any]:
        """The keys under ``prefix.`` with the prefix removed.

        Examples:
            >>> sucrose.SucroseScenario(ws, "base/case1").config_of("model")
            {'input_dim': 200, 'hidden_dim': 100, 'output_dim': 100}
        """
        out = under_prefix(self._values, prefix)
        head = prefix.rstrip(".") + "." if prefix.rstrip(".") else ""
        self._read.update(head + k for k in out)
        return out

    def origin(self, key: str) -> str:
        """The domain that set ``key``'s value (the nearest in the chain).

        Raises:
            MissingKeyError: ``key`` is not set.
        """
        try:
            return self._origins[key]
        except (KeyError, TypeError):
            raise self._missing(key) from None

    def hparams(self, prefix: str | None = None) -> dict[str, Any]:
        """The merged config (or the keys under ``prefix``) as a plain dict of plain values.

        Meant for ``save_hyperparameters`` and loggers; it does not mark keys as used.
        """
        values: dict[str, Any] = plain(self._values if prefix is None else under_prefix(self._values, prefix))
        return values

    def unused_keys(self) -> list[str]:
        """Merged keys never read through ``ssc[...]``, ``get``, ``config_of`` or ``partial``."""
        return sorted(k for k in self._values if k not in self._read)

    def describe(self, key: str) -> str:
        """``file:line:column: scenario 's', key 'k' (set in domain 'd')`` for messages about a key.

        A prefix that is no key itself (``model.encoder``) is placed at its first key.

        Examples:
            >>> view = ConfigView(sucrose.load_config(ws), "base/case1")
            >>> view.describe("model.hidden_dim").split("config.yaml:")[1]
            "3:3: scenario 'base/case1', key 'model.hidden_dim' (set in domain 'base')"
        """
        origins = self._origins
        real = key if key in origins else next((k for k in origins if k.startswith(key + ".")), None)
        what = f"scenario {self._name!r}, key {key!r}"
        if real is None:
            return f"{self._cfg.path}: {what}"
        return f"{self._cfg.where(origins[real], real)}: {what} (set in domain {origins[real]!r})"

    def partial(
        self,
        fn: Callable[..., Any],
        prefix: str = "",
        /,
        *,
        strict: bool | None = None,
        check_types: bool = True,
        **kwargs: Any,
    ) -> ConfigPartial:
        """Like ``functools.partial(fn, **config keys under prefix that fn takes)``.

        Args:
            fn: a function or class (its ``__init__`` signature, inherited ones too).
            prefix: dotted prefix such as ``"model"``; ``prefix.<name>`` binds parameter
                ``<name>``. ``model.encoder.dim`` goes to a parameter ``encoder`` as
                ``{"dim": ...}`` when no ``model.encoder`` key exists. A ``**kwargs``
                callable takes every direct key under the prefix.
            strict: raise instead of warning about keys under the prefix that match no
                parameter. If ``fn`` has a parameter named ``strict`` itself, give that one at
                call time (``ssc.partial(fn, "model")(strict=True)``).
            check_types: check each value taken from the config against its parameter's type
                annotation and bind it converted (a string to a ``Path`` or an enum member, a
                mapping to a dataclass, an int to a float); ``False`` binds the values as read.
            **kwargs: values that win over the config (as do those given at call time).

        Returns:
            A real :class:`functools.partial`; ``.keywords`` shows what was bound.

        Raises:
            ConfigError: values that do not match their parameters' annotations, all of them
                at once, each with ``file:line:column``, the domain, the expected type and the value.
            SucroseError: with ``strict``, for unknown keys; when called, for a required
                parameter that neither the config nor the call supplies.

        Examples:
            >>> make = sucrose.SucroseScenario(ws, "base/case1").partial(MyNet, "model")
            >>> make.keywords
            {'input_dim': 200, 'hidden_dim': 100, 'output_dim': 100}
            >>> make().input_dim
            200
        """
        under = f"{prefix}." if prefix else "the top level"
        where = f"under {under} in scenario {self._name!r} ({' -> '.join(self._chain)})"
        part, binding = make_partial(
            fn,
            prefix,
            self._values,
            where=where,
            strict=strict,
            overrides=kwargs,
            check_types=check_types,
            describe=self.describe,
            path=str(self._cfg.path),
        )
        self._read.update(binding.used)
        return part
