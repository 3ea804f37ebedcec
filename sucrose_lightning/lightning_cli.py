"""``SucroseCLI``: Lightning's ``LightningCLI`` on a scenario of ``config.yaml``.

``python train.py fit --scenario base/case1`` takes the model's and the datamodule's init
arguments from the domain's ``model.*`` and ``data.*`` keys (checked against their annotations
before anything is built), trains with the scenario's checkpoint callback and logger, and
resumes from ``ssc.last_ckpt()``. Trainer flags work as usual; a command-line change of a
value the scenario decides is refused (see ``docs/lightning-cli.md``).

This module imports lightning and jsonargparse (``pip install "sucrose-lightning[cli]"``).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ._cli_args import overrides_refusal, peek_args
from .errors import ConfigError
from .lightning import SucroseCheckpoint
from .scenario import SucroseScenario

__all__ = ["SucroseCLI"]


class SucroseCLI(LightningCLI):
    """``LightningCLI`` whose model and data come from a scenario, and which resumes it.

    Args:
        model_class: the ``LightningModule`` (a fixed class; subclass mode is not supported).
        datamodule_class: the ``LightningDataModule``, or ``None``.
        *args: passed to ``LightningCLI`` (``save_config_callback``, ``trainer_class``...).
        model_prefix: the config keys of the model's arguments (``model.hidden_dim``).
        data_prefix: the config keys of the datamodule's arguments.
        workspace: the folder holding ``config.yaml`` (``--workspace`` overrides it).
        scenario: a default for ``--scenario``.
        check_types: check the bound values against the annotations (see ``ssc.partial``).
        **kwargs: passed to ``LightningCLI`` (``args``, ``run``, ``trainer_defaults``...).

    On the command line, besides LightningCLI's own options: ``--scenario NAME`` (required),
    ``--workspace DIR`` and ``--checkpoint.*``, the options of :class:`SucroseCheckpoint`
    (``--checkpoint.keep_last 3``, ``--checkpoint.monitor val_loss``...).

    A config problem (a bad type, a missing reference, an unknown scenario) or a changed
    scenario value is printed (all problems at once) and exits with status 2, before anything
    is built; ``sucrose check --target model=...`` finds the same problems for every scenario.
    """

    def __init__(
        self,
        model_class: type[Any] | Callable[..., Any],
        datamodule_class: type[Any] | Callable[..., Any] | None = None,
        *args: Any,
        model_prefix: str = "model",
        data_prefix: str = "data",
        workspace: str | os.PathLike[str] = ".",
        scenario: str | None = None,
        check_types: bool = True,
        **kwargs: Any,
    ) -> None:
        self.model_prefix = model_prefix
        self.data_prefix = data_prefix
        argv = kwargs.get("args")
        argv = list(argv) if isinstance(argv, Sequence) and not isinstance(argv, str) else sys.argv[1:]
        sub, name, ws = peek_args(argv, scenario, str(workspace))
        self.ssc: SucroseScenario | None = None
        #: the parser defaults the scenario decides: ``{"model.hidden_dim": 64, ...}``
        self.scenario_defaults: dict[str, Any] = {}
        if name is None and sub is not None and not {"-h", "--help"} & set(argv):
            _exit(f"{sub}: name the scenario on the command line: --scenario NAME (a domain of config.yaml)")
        if name is not None:
            self.ssc, self.scenario_defaults = _open(
                ws, name, model_class, datamodule_class, self, check_types
            )
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        save_kwargs = {"config_filename": f"lightning-config.{sub or 'run'}.{stamp}.yaml"}
        kwargs["save_config_kwargs"] = {**save_kwargs, **(kwargs.get("save_config_kwargs") or {})}
        self._default_scenario, self._default_workspace = scenario, str(workspace)
        try:
            super().__init__(model_class, datamodule_class, *args, **kwargs)  # runs the subcommand
        finally:
            _close_process_group()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """``--scenario``, ``--workspace``, ``--checkpoint.*``, and the scenario's values as defaults."""
        parser.add_argument(
            "--scenario",
            type=str,
            required=self._default_scenario is None,
            default=self._default_scenario,
            help="the scenario (a domain of config.yaml) to train, e.g. base/case1",
        )
        parser.add_argument(
            "--workspace", type=str, default=self._default_workspace, help="the folder holding config.yaml"
        )
        parser.add_class_arguments(
            SucroseCheckpoint, "checkpoint", skip={"ssc"}, instantiate=False, fail_untyped=False
        )
        if self.scenario_defaults:
            parser.set_defaults(self.scenario_defaults)

    def before_instantiate_classes(self) -> None:
        """Refuse values the command line changed; resume from ``ssc.last_ckpt()`` unless given."""
        sub = self.subcommand
        config = self.config[sub] if sub is not None else self.config
        if self.ssc is None or config.get("scenario") != self.ssc.name:
            _exit(
                f"the scenario must be given on the command line (--scenario NAME), not only in a "
                f"--config file (got {config.get('scenario')!r}): its values become the parser's "
                "defaults before any file is read"
            )
        assert self.ssc is not None
        parser = self._parser(sub)
        groups = {"model": self.model_prefix, "data": self.data_prefix}
        defaults = parser.get_defaults()
        refusal = overrides_refusal(self.ssc, config, defaults, groups, os.path.basename(sys.argv[0]))
        if refusal is not None:
            _exit(refusal)
        if sub is not None and "ckpt_path" in config and config["ckpt_path"] is None:
            config["ckpt_path"] = self.ssc.last_ckpt()

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer, with the scenario's checkpoints and logger (unless ``--trainer.logger`` is given)."""
        assert self.ssc is not None
        trainer = self._get(self.config_init, "trainer", default={})
        if trainer.get("logger") in (None, True):
            kwargs["logger"] = self.ssc.logger()
        if trainer.get("enable_checkpointing") is not False:
            options = dict(self._get(self.config_init, "checkpoint", default={}) or {})
            extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
            config = {**trainer, **kwargs}
            return self._instantiate_trainer(config, [*extra, SucroseCheckpoint(self.ssc, **options)])
        return super().instantiate_trainer(**kwargs)


def _as_default(value: Any) -> Any:
    """A bound value as a jsonargparse default: a dataclass as the mapping of its fields.

    Examples:
        >>> @dataclasses.dataclass
        ... class Enc:
        ...     dim: int
        >>> _as_default(Enc(3)), _as_default(0.1)
        ({'dim': 3}, 0.1)
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_default(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _close_process_group() -> None:
    """End a DDP run's process group before the interpreter exits.

    Left to the interpreter's exit, gloo's threads sometimes abort the finished process
    ("terminate called without an active exception", status -6).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _exit(message: str) -> None:
    sys.stderr.write(f"sucrose: {message}\n")
    raise SystemExit(2)


def _open(
    ws: str,
    name: str,
    model_class: Any,
    datamodule_class: Any,
    cli: SucroseCLI,
    check_types: bool,
) -> tuple[SucroseScenario, dict[str, Any]]:
    """Open the scenario, bind (and check) the model's and the datamodule's values: all problems at once."""
    from .errors import SucroseError

    try:
        ssc = SucroseScenario(ws, name)
    except SucroseError as err:
        _exit(str(err))
        raise  # pragma: no cover - _exit does not return
    problems: list[str] = []
    defaults: dict[str, Any] = {}
    targets = [("model", cli.model_prefix, model_class)]
    if datamodule_class is not None:
        targets.append(("data", cli.data_prefix, datamodule_class))
    for group, prefix, fn in targets:
        try:
            part = ssc.partial(fn, prefix, check_types=check_types)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        defaults.update({f"{group}.{k}": _as_default(v) for k, v in part.keywords.items()})
    if problems:
        _exit(
            str(ConfigError(str(ssc.config_file.path), problems)) + "\nNothing was trained; fix config.yaml."
        )
    return ssc, defaults
