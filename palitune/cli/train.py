"""``palitune train``: fine-tune, as ``python -m training.train`` does; ``--plan`` estimates its
peak memory on a GPU instead, before anything loads."""

from __future__ import annotations

import argparse
import dataclasses
import json

from data.workspace import Workspace
from palitune.cli.common import BAD_INPUT, Subparsers, fail, require_file


def add_commands(sub: Subparsers) -> None:
    """Add ``train`` to the top-level subparsers ``sub``: ``--config``, then one option per config
    field (the parser of ``python -m training.train``, from the same fields), then ``--plan``'s."""
    from training.config import add_config_arguments

    train = sub.add_parser(
        "train",
        help="fine-tune (same options as python -m training.train)",
        description="Fine-tune a base model on a dataset as the run config says; every config field can be "
        "overridden below, as --NAME VALUE or NAME=VALUE.",
    )
    add_config_arguments(train)
    plan = train.add_argument_group("memory plan (--plan)")
    plan.add_argument(
        "--plan",
        action="store_true",
        help="print the estimated peak GPU memory by component, the largest batch that fits and the switches "
        "that would make it fit; loads no weights and trains nothing",
    )
    plan.add_argument("--gpu-memory", type=float, default=80.0, metavar="GIB", help="GPU memory for --plan")
    plan.add_argument("--prompt-tokens", type=int, metavar="N", help="text tokens before the answer (--plan)")
    plan.add_argument("--answer-tokens", type=int, metavar="N", help="answer tokens, default: the task's budget")
    plan.add_argument("--json", action="store_true", help="--plan as JSON")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace, ws: Workspace) -> int:
    if args.config is not None:
        require_file(args.config, "--config")  # one line now, before training imports torch
    if args.plan:
        return _plan(args)
    from training.config import config_overrides
    from training.train import main

    config = ["--config", str(args.config)] if args.config is not None else []
    return main([*config, *config_overrides(args)])


def _plan(args: argparse.Namespace) -> int:
    from training.config import config_from_args
    from training.memory_plan import plan_memory
    from training.model_shapes import model_dims

    config = config_from_args(args)
    try:
        dims = model_dims(config.base_model)
    except ValueError as err:
        return fail(f"{args.config}: {err}", BAD_INPUT)
    plan = plan_memory(
        config, dims, args.gpu_memory, prompt_tokens=args.prompt_tokens, answer_tokens=args.answer_tokens
    )
    if args.json:
        record = {**dataclasses.asdict(plan), "total_gib": plan.total_gib, "fits": plan.fits}
        print(json.dumps(record, indent=2))
        return 0
    on = {True: "on", False: "off"}
    print(
        f"{config.base_model}: method {config.method.value}, precision {config.precision.value}, gradient "
        f"checkpointing {on[config.gradient_checkpointing]}, batch {plan.batch_size} x {plan.seq_len} tokens "
        f"({dims.image_tokens} image, {plan.supervised_tokens} answer), {dims.params / 1e9:.2f} B parameters"
    )
    rows = [(name, getattr(plan.breakdown, name)) for name in ("weights", "gradients", "optimizer", "activations")]
    rows += [("logits", plan.breakdown.logits), ("peak", plan.breakdown.total)]
    print(f"\n  {'component':<12}{'GiB':>8}")
    for name, value in rows:
        print(f"  {name:<12}{value / 2**30:>8.2f}")
    parts = sum(value for _, value in rows[:-1])
    if plan.breakdown.total < parts:
        print("  (peak < sum: with one micro-batch, backward frees activations as the gradients appear)")
    verdict = "fits" if plan.fits else "does NOT fit"
    print(
        f"\n{verdict} a {args.gpu_memory:g} GiB GPU (budget {plan.budget_gib:.1f} GiB after context and fragmentation)"
    )
    print(f"largest micro-batch that fits: {plan.max_batch or 'none'}")
    if plan.switches:
        print("\nwhat would make it fit:")
        width = max(len(s.change) for s in plan.switches) + 2
        print(f"  {'change':<{width}}{'peak GiB':>9}{'max batch':>11}")
        for switch in plan.switches:
            mark = "" if switch.total_gib <= plan.budget_gib else "  (not enough)"
            print(f"  {switch.change:<{width}}{switch.total_gib:>9.1f}{switch.max_batch:>11}{mark}")
    return 0
