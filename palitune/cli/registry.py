"""``palitune registry``: a registered model's versions, promotion, rollback and export."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.workspace import Workspace
from palitune.cli.common import BAD_INPUT, KEPT_OUT, OK, Subparsers, fail, log

if TYPE_CHECKING:
    from registry.promotion import Gate, PromotionPolicy

NAME_HELP = "registered model, e.g. palitune-vqa"


class _BadFlag(ValueError):
    """A flag value argparse let through that does not parse (``--floor x=abc``)."""


def add_commands(sub: Subparsers) -> None:
    """Add ``registry show|promote|rollback|export`` to the top-level subparsers ``sub``."""
    registry = sub.add_parser("registry", help="model versions: lineage, promotion, rollback, export").add_subparsers(
        dest="action", required=True
    )
    show = registry.add_parser("show", help="every version of a registered model with its aliases and lineage")
    show.add_argument("name", help=NAME_HELP)
    show.set_defaults(func=_show)
    promote = registry.add_parser(
        "promote",
        help="score challenger and champion on the challenger's test set; move champion if it wins "
        "(exit 0 promoted, 3 kept)",
    )
    promote.add_argument("name", help=NAME_HELP)
    promote.add_argument("--version", help="the version to judge (default: the one holding alias 'challenger')")
    add_gate_flags(promote)
    promote.set_defaults(func=_promote)
    back = registry.add_parser("rollback", help="give champion back to previous-champion (the two aliases swap)")
    back.add_argument("name", help=NAME_HELP)
    back.set_defaults(func=_rollback)
    export = registry.add_parser("export", help="the adapter of NAME@ALIAS merged into its base, one safetensors model")
    export.add_argument("ref", help="NAME@ALIAS (palitune-vqa@champion) or NAME@VERSION")
    export.add_argument("--merged", action="store_true", help="merge the LoRA adapter into the base (required)")
    export.add_argument("--out", required=True, help="folder to write (replaced only when complete)")
    export.set_defaults(func=_export)


def add_gate_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per gate of ``registry.promotion.PromotionPolicy``, with its default and help;
    a mapping gate (``floors``) is a repeatable ``KEY=VALUE`` flag (``--floor``)."""
    from registry.promotion import policy_gates

    for gate in policy_gates():
        flag = gate.metadata.get("flag", "--" + gate.name.replace("_", "-"))
        if typing.get_origin(gate.type) is dict:
            metavar = gate.metadata.get("metavar", "KEY=VALUE")
            parser.add_argument(
                flag, dest=gate.name, action="append", default=[], metavar=metavar, help=f"{gate.help} (repeatable)"
            )
        else:
            parser.add_argument(flag, dest=gate.name, type=gate.type, default=gate.default, help=gate.help)


def _policy(args: argparse.Namespace) -> PromotionPolicy:
    """The ``PromotionPolicy`` the gate flags of ``args`` describe.

    Raises:
        _BadFlag: a ``KEY=VALUE`` item whose value does not parse; the message names the flag.
    """
    from registry.promotion import PromotionPolicy, policy_gates

    values: dict[str, Any] = {}
    for gate in policy_gates():
        value = getattr(args, gate.name)
        values[gate.name] = _mapping(gate, value) if typing.get_origin(gate.type) is dict else value
    return PromotionPolicy.from_gates(values)


def _mapping(gate: Gate, items: list[str]) -> dict[str, Any]:
    """``["vqa_accuracy=0.5", ...]`` as ``{"vqa_accuracy": 0.5, ...}``, values of the gate's type."""
    convert = typing.get_args(gate.type)[1]
    mapping = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            mapping[key] = convert(text)
        except ValueError:
            key_name = gate.metadata.get("metavar", "KEY=VALUE").partition("=")[0]
            example = f", e.g. {gate.metadata['example']}" if "example" in gate.metadata else ""
            flag = gate.metadata.get("flag", gate.name)
            raise _BadFlag(f"{flag} {item!r}: expected {key_name}=NUMBER{example}") from None
    return mapping


def _show(args: argparse.Namespace, ws: Workspace) -> int:
    from palitune.cli.summary import print_lineage

    return print_lineage(ws, args.name)


def _rollback(args: argparse.Namespace, ws: Workspace) -> int:
    from registry.models import registered_model
    from registry.promotion import rollback
    from registry.tracking import client_for

    client = client_for(ws.tracking_uri)
    registered_model(client, args.name)  # an unknown name is said as such, not as a missing alias
    try:
        new, old = rollback(client, args.name)
    except ValueError as err:
        return fail(err)
    print(f"{args.name}: champion is v{new} again (was v{old}, now previous-champion)")
    return 0


def _promote(args: argparse.Namespace, ws: Workspace) -> int:
    from registry.challenge import challenge, resolve_challenger
    from registry.models import CHAMPION, registered_model
    from registry.tracking import client_for, version_url

    try:
        policy = _policy(args)
    except _BadFlag as err:
        return fail(err, BAD_INPUT)
    client = client_for(ws.tracking_uri)
    registered_model(client, args.name)  # an unknown name is said as such, before anything is scored
    try:
        challenger = resolve_challenger(client, args.name, args.version)
    except ValueError as err:
        return fail(err, BAD_INPUT)
    if CHAMPION in challenger.aliases:  # nothing to judge: scoring it against itself would take minutes
        log.info("%s v%s already is %s; nothing to score", args.name, challenger.version, CHAMPION)
        print(f"{args.name}: v{challenger.version} already is {CHAMPION}")
        print(f"  page:     {version_url(ws.tracking_uri, args.name, challenger.version)}")
        return OK
    try:
        outcome = challenge(ws, client, args.name, version=str(challenger.version), policy=policy)
    except ValueError as err:  # a version trained on no versioned dataset: it cannot be judged
        return fail(err, BAD_INPUT)
    decision, holder = outcome.decision, outcome.champion
    verdict = "promoted" if decision.promote else "not promoted"
    print(f"{args.name}: {verdict} (scored on {outcome.dataset_dir})\n  {decision.reason}")
    print(f"  champion: {'v' + holder if holder else 'none'}")
    if holder:
        print(f"  page:     {version_url(ws.tracking_uri, args.name, holder)}")
    return OK if decision.promote else KEPT_OUT


def _export(args: argparse.Namespace, ws: Workspace) -> int:
    from registry.serving import export_version

    if not args.merged:
        return fail("only --merged exports are supported (the adapter alone is the version)", BAD_INPUT)
    print(export_version(ws.tracking_uri, args.ref, ws.models, Path(args.out)))
    return 0
