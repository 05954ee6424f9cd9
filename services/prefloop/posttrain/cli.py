"""``prefloop train dpo|reward-model``: a run directory in, a Hugging Face model out.

    prefloop train dpo --dataset runs/NAME --model PATH --output DIR [--loss sigmoid|ipo|simpo]
        [--lora] [--epochs N] [--batch-size N] [--learning-rate LR] [--beta B] [--deepspeed zero3]
    prefloop train reward-model --dataset runs/NAME --model PATH --output DIR [...]
    prefloop train manifest RUN.yaml [--run-dir DIR] [--output DIR]

``train manifest`` trains what the ActiveRun's ``spec.postTraining`` says on the run's directory
(``spec.output.dir``): the command of the operator's post-training Job.

The flags fill one :class:`~prefloop.spec_posttrain.PostTrainingSpec` (the model of
``spec.postTraining``), so a command line and a manifest train identically. Bad input (not a run
directory, no model, LoRA without peft) exits 2 with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefloop.spec_posttrain import PostTrainingSpec

EXIT_OK = 0
EXIT_INVALID = 2
SUBCOMMANDS = {"dpo": "dpo", "reward-model": "reward_model"}


def add_train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``train`` with its ``dpo`` and ``reward-model`` subcommands."""
    train = sub.add_parser("train", help="train a model on a run's dataset (TRL)")
    tsub = train.add_subparsers(dest="train_command", required=True)
    defaults = PostTrainingSpec()
    for name, kind in SUBCOMMANDS.items():
        what = "a policy with DPO/IPO/SimPO" if kind == "dpo" else "a Bradley-Terry reward model"
        p = tsub.add_parser(name, help=f"train {what} on a prefloop run directory")
        p.add_argument("--dataset", type=Path, required=True, help="a prefloop run directory")
        p.add_argument("--model", required=True, help="starting model: a local HF directory")
        p.add_argument("--output", type=Path, required=True, help="directory to save into")
        if kind == "dpo":
            p.add_argument("--loss", choices=["sigmoid", "ipo", "simpo"], default=defaults.loss)
            p.add_argument("--beta", type=float, default=defaults.beta)
        p.add_argument("--epochs", type=float, default=defaults.epochs)
        p.add_argument("--batch-size", type=int, default=defaults.batch_size)
        p.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        p.add_argument("--max-length", type=int, default=defaults.max_length)
        p.add_argument("--seed", type=int, default=defaults.seed)
        p.add_argument("--lora", action="store_true", help="train LoRA adapters (extra: lora)")
        p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
        p.add_argument("--cpu", action="store_true", help="train on the CPU")
        p.add_argument(
            "--deepspeed", default=None, help="'zero3' (shipped config) or a DeepSpeed JSON path"
        )
    m = tsub.add_parser(
        "manifest", help="train what an ActiveRun's spec.postTraining says, on its run directory"
    )
    m.add_argument("manifest", type=Path, help="the ActiveRun manifest (YAML)")
    m.add_argument("--run-dir", default=None, help="the run directory (default: output.dir)")
    m.add_argument("--output", type=Path, default=None, help="default: postTraining.outputDir")


def spec_from_args(args: argparse.Namespace) -> PostTrainingSpec:
    """The settings the flags describe (validated like ``spec.postTraining``)."""
    fields: dict[str, Any] = {
        "kind": SUBCOMMANDS[args.train_command],
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "seed": args.seed,
        "bf16": args.bf16,
        "use_cpu": args.cpu,
        "deepspeed": args.deepspeed,
        "lora": {"enabled": args.lora},
    }
    if args.train_command == "dpo":
        fields.update(loss=args.loss, beta=args.beta)
    return PostTrainingSpec.model_validate(fields)


def from_manifest(args: argparse.Namespace) -> tuple[PostTrainingSpec, Path]:
    """``spec.postTraining`` of the manifest and the run directory it trains on.

    Raises:
        PostTrainError: the manifest sets no ``spec.postTraining``.
    """
    from prefloop.engine.preflight import run_dir_for
    from prefloop.posttrain.config import PostTrainError
    from prefloop.spec import load_activerun

    run = load_activerun(args.manifest)
    if run.spec.post_training is None:
        raise PostTrainError(f"{args.manifest}: spec.postTraining is not set; nothing to train")
    return run.spec.post_training, run_dir_for(run, args.run_dir)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``prefloop train``: validate, train, print where the model went."""
    from pydantic import ValidationError

    from prefloop.posttrain.config import PostTrainError

    try:
        if args.train_command == "manifest":
            spec, args.dataset = from_manifest(args)
        else:
            spec = spec_from_args(args)
    except ValidationError as exc:
        print(f"prefloop train: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except PostTrainError as exc:
        print(f"prefloop train: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        if spec.kind == "dpo":
            from prefloop.posttrain.dpo import train_dpo

            outcome = train_dpo(spec, args.dataset, args.output)
        else:
            from prefloop.posttrain.reward_model import train_reward_model

            outcome = train_reward_model(spec, args.dataset, args.output)
    except PostTrainError as exc:
        print(f"prefloop train: {exc}", file=sys.stderr)
        return EXIT_INVALID
    last = f", last loss {outcome.losses[-1]:.4f}" if outcome.losses else ""
    print(f"trained {spec.kind} in {outcome.steps} steps{last}; saved to {outcome.output_dir}")
    return EXIT_OK
