"""What every recipe does before it loads anything: parse the arguments, set up logging, guard the output directory."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import datasets
import transformers
from accelerate import PartialState
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class OutputArguments:
    """`--overwrite_output_dir`, which transformers 5 dropped from TrainingArguments; the recipes keep its meaning."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train from scratch into an output directory that already has files, writing over them, instead "
            "of refusing (or resuming from its last checkpoint). Nothing is deleted either way."
        },
    )


def use_cpu_when_launched_without_accelerator() -> bool:
    """Several processes (accelerate launch / torchrun) on a machine with no accelerator: use the CPU and gloo, by
    setting ACCELERATE_USE_CPU=true in the environment (and an FSDP config falls back to data parallel). Returns
    whether it set it. Call it before TrainingArguments is built.

    Without this, TrainingArguments leaves such processes undistributed and each trains alone on the same
    output directory. `accelerate launch --cpu` itself starts one process unless MPI is set up.
    """
    import torch

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = getattr(torch, "accelerator", None)
    has_accelerator = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if launched and not has_accelerator:
        _fsdp_falls_back_to_data_parallel()
    if launched and not has_accelerator and "ACCELERATE_USE_CPU" not in os.environ:
        os.environ["ACCELERATE_USE_CPU"] = "true"
        return True
    return False


def _fsdp_falls_back_to_data_parallel() -> None:
    """An FSDP config launched on a CPU-only machine: accelerate trains data-parallel over gloo (MULTI_CPU) instead.

    Then nothing would broadcast rank 0's weights, so `fsdp_cpu_ram_efficient_loading` (which loads the other
    ranks' models on the meta device) must be off, or every rank but 0 fails on its meta tensors.
    """
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() not in ("1", "true", "yes"):
        return
    os.environ["ACCELERATE_USE_FSDP"] = "false"
    os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
    logger.warning(
        "FSDP config on a machine with no accelerator: accelerate cannot shard on the CPU, so the processes train "
        "data-parallel over gloo, each holding the whole model (CPU-RAM-efficient loading turned off)."
    )


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple:
    """Parse `argv` (default: sys.argv[1:]) into the dataclasses; a single .json or .yaml file holds them all.

    Parsing only: the environment is left as it is (`use_cpu_when_launched_without_accelerator` is its own step).
    """
    # transformers 4.x still has --overwrite_output_dir in TrainingArguments: use that one there.
    native = OutputArguments in dataclass_types and "overwrite_output_dir" in {
        f.name for f in dataclasses.fields(TrainingArguments)
    }
    types = [t for t in dataclass_types if not (native and t is OutputArguments)]
    parser = HfArgumentParser(types)
    _tidy_help(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        parsed = parser.parse_json_file(os.path.abspath(argv[0]))
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        parsed = parser.parse_yaml_file(os.path.abspath(argv[0]))
    else:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    if native:
        training = next(p for p in parsed if isinstance(p, TrainingArguments))
        parsed = list(parsed)
        parsed.insert(list(dataclass_types).index(OutputArguments), OutputArguments(training.overwrite_output_dir))
    return tuple(parsed)


def require_existing_paths(**options: str | None) -> None:
    """Fail clearly when a model/config/tokenizer option names a local path that does not exist.

    A Hub id is `name` or `org/name`; anything else (absolute, ./, ../, ~, a trailing or a second slash) is a
    path, and a missing one would otherwise end in a Hub error about invalid repo ids.
    """
    for option, value in options.items():
        if not value or os.path.exists(os.path.expanduser(value)):
            continue
        looks_local = (
            value.startswith(("/", ".", "~"))
            or value.endswith("/")
            or value.count("/") > 1
            or os.sep != "/"
            and os.sep in value
        )
        if looks_local:
            raise FileNotFoundError(
                f"--{option} {value!r}: no such file or directory. Check the path (relative paths start from "
                f"{os.getcwd()}), or give a Hub model id such as 'bert-base-uncased' or 'org/name'."
            )


def require_positive(**options: int | None) -> None:
    """Fail clearly, naming the option, when a count option (a length, a number of samples or workers) is below 1."""
    for option, value in options.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{option} must be a positive integer, got {value}. Leave it out for the default.")


def _tidy_help(parser: HfArgumentParser) -> None:
    """`--help` with the recipes' own headed groups (SSE) first, and a `--no_X` help that says what it does."""
    positional, general, *named = parser._action_groups
    parser._action_groups = [positional, *named, general]
    for action in parser._actions:
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
            action.help = f"Turn off --{action.dest} (the same as --{action.dest} False)."


def setup_logging(training_args: TrainingArguments) -> None:
    """Log like transformers' example scripts: INFO on the main process, warnings from the others."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logging.getLogger("recipes").setLevel(level)
    for name in ("__main__", "run_glue", "run_mlm", "run_setup", "run_report", "data_sources"):
        logging.getLogger(name).setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger.warning(
        "Process rank %s, device %s, n_gpu %s, distributed %s, fp16 %s, bf16 %s",
        training_args.process_index,
        training_args.device,
        training_args.n_gpu,
        training_args.parallel_mode.value == "distributed",
        training_args.fp16,
        training_args.bf16,
    )


class OutputDirectoryError(ValueError):
    """The output directory holds files that a run would write over."""


def prepare_output_dir(training_args: TrainingArguments, overwrite_output_dir: bool) -> str | None:
    """Decide how to treat an existing output directory; return the checkpoint to resume from, if any.

    - empty or absent: a fresh run;
    - holds `checkpoint-N` folders: resume from the newest (unless --overwrite_output_dir);
    - holds other files: refuse, unless --overwrite_output_dir. Nothing is ever deleted here.
    Every process decides before any of them writes, then they wait for each other.
    """
    output_dir = training_args.output_dir
    decision: str | None = None
    error: str | None = None
    if training_args.do_train and os.path.isdir(output_dir) and not overwrite_output_dir:
        last_checkpoint = get_last_checkpoint(output_dir)
        if last_checkpoint is not None and training_args.resume_from_checkpoint is None:
            decision = last_checkpoint
            logger.info(
                "Resuming from %s, the last checkpoint in %s. Pass --overwrite_output_dir to train from scratch.",
                last_checkpoint,
                output_dir,
            )
        elif last_checkpoint is None and os.listdir(output_dir):
            error = (
                f"Output directory {output_dir!r} already exists and is not empty "
                f"({', '.join(sorted(os.listdir(output_dir))[:5])}...), and holds no checkpoint to resume from. "
                "Pass --overwrite_output_dir to write over it (nothing is deleted), or choose another --output_dir."
            )
    # Wait until every process has looked, so that no process sees files that another just wrote.
    _ = training_args.device  # sets up the distributed state, as TrainingArguments wants it
    PartialState().wait_for_everyone()
    if error:
        raise OutputDirectoryError(error)
    return decision


def start_run(
    dataclass_types: Sequence[type], argv: Sequence[str] | None, actions: Sequence[str] = ("do_train", "do_eval")
) -> tuple[tuple, str | None]:
    """A recipe's first steps: under a multi-process launch on a machine with no accelerator, switch accelerate to
    the CPU (environment variables, before TrainingArguments sets up its device); parse the arguments
    (TrainingArguments last, OutputArguments among them); train and evaluate when no action is given; refuse
    evaluation during training without training; set up logging and the output folder; and seed everything.
    Returns the parsed arguments and the checkpoint to resume from."""
    use_cpu_when_launched_without_accelerator()
    parsed = parse_args(dataclass_types, argv)
    training_args = parsed[-1]
    output_args = next(args for args in parsed if isinstance(args, OutputArguments))
    if not any(getattr(training_args, action) for action in actions):
        training_args.do_train = training_args.do_eval = True
        logger.info("No %s given: training and evaluating.", "/".join("--" + action for action in actions))
    if not training_args.do_train and training_args.eval_strategy != "no":
        raise ValueError(
            f"--eval_strategy {training_args.eval_strategy.value} evaluates while training, but --do_train is not set. "
            "Add --do_train (and --do_eval)."
        )
    setup_logging(training_args)
    last_checkpoint = prepare_output_dir(training_args, output_args.overwrite_output_dir)
    transformers.set_seed(training_args.seed)
    return parsed, last_checkpoint


def shutdown_distributed() -> None:
    """End the process group cleanly when launched with several processes (avoids torch's exit warning)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
