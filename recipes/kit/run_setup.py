"""What every recipe does before it loads anything: parse the arguments, set up logging, guard the output directory."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import sys
import types
import typing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Union

import datasets
import transformers
import yaml
from accelerate import PartialState
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from sse_hf.arguments import SSEArgumentError
from sse_hf.validation import check_switch, is_integer, is_number

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
    # the actions (--do_train, --do_eval, ...) the user gave, before `start_run` defaults them; not an option
    actions_given: tuple[str, ...] = field(default=(), init=False, repr=False)


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
    if not launched and "MASTER_ADDR" in os.environ and "LOCAL_RANK" not in os.environ:
        logger.warning(
            "This is one process, started by accelerate's single-process launcher (MASTER_ADDR is set, WORLD_SIZE is "
            "not): with distributed_type NO, as in cpu.yaml, accelerate ignores --num_processes. For several "
            "processes on the CPU, launch with --config_file recipes/accelerate_configs/multi_cpu.yaml."
        )
    if launched and not has_accelerator and _is_true(os.environ.get("ACCELERATE_USE_DEEPSPEED")):
        return False  # DeepSpeed brings its own CPU accelerator; the gloo fallback would break ZeRO-3's partitions
    if launched and not has_accelerator:
        _fsdp_falls_back_to_data_parallel()
    if launched and not has_accelerator and "ACCELERATE_USE_CPU" not in os.environ:
        os.environ["ACCELERATE_USE_CPU"] = "true"
        return True
    return False


def _is_true(value: str | None) -> bool:
    return (value or "false").lower() in ("1", "true", "yes")


def require_deepspeed_backend(ddp_backend: str | None) -> None:
    """DeepSpeed on a machine with no accelerator counts one process unless told to use gloo: refuse it up front,
    saying what to add, instead of DeepSpeed's batch-size error after the model is loaded."""
    import torch

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not (launched and _is_true(os.environ.get("ACCELERATE_USE_DEEPSPEED")) and not torch.cuda.is_available()):
        return
    if ddp_backend is None:
        raise ValueError(
            "--ddp_backend: DeepSpeed on a machine with no GPU needs --ddp_backend gloo (without it accelerate counts "
            "one process and DeepSpeed refuses the batch size). Add --ddp_backend gloo."
        )


def _fsdp_falls_back_to_data_parallel() -> None:
    """An FSDP config launched on a CPU-only machine: accelerate trains data-parallel over gloo (MULTI_CPU) instead.

    Then nothing would broadcast rank 0's weights, so `fsdp_cpu_ram_efficient_loading` (which loads the other
    ranks' models on the meta device) must be off, or every rank but 0 fails on its meta tensors.
    """
    if not _is_true(os.environ.get("ACCELERATE_USE_FSDP")):
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
            parsed = _parse_file(parser, argv[0])
        else:
            try:
                parsed = parser.parse_args_into_dataclasses(args=argv)
            except SSEArgumentError as error:  # usage and one line, exit status 2, like argparse's own errors
                parser.error(str(error))
    searching = any(getattr(args, "search_sse", None) for args in parsed)
    for warning in caught:
        # under --search_sse an option idle alone may act in a candidate: the search judges it per candidate
        if not (searching and str(warning.message).startswith("These SSE options do nothing")):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if native:
        training = next(p for p in parsed if isinstance(p, TrainingArguments))
        parsed = list(parsed)
        parsed.insert(list(dataclass_types).index(OutputArguments), OutputArguments(training.overwrite_output_dir))
    return tuple(parsed)


def _parse_file(parser: HfArgumentParser, name: str) -> tuple:
    """The arguments in a JSON or YAML file: each key a field, each value what the same text would mean on the command
    line (a switch strictly: "false" is False, "maybe" an error); any problem is an argparse error naming the file."""

    def fail(message: str) -> NoReturn:
        parser.error(f"arguments file {name}: {message}")

    try:
        with open(os.path.abspath(name), encoding="utf-8") as handle:
            values = json.load(handle) if name.endswith(".json") else yaml.safe_load(handle)
    except OSError as error:
        fail(f"cannot be read ({error.strerror}).")
    except (ValueError, yaml.YAMLError) as error:
        fail(f"is not valid {'JSON' if name.endswith('.json') else 'YAML'} ({error}).")
    if not isinstance(values, dict):
        fail(f"must hold an object of argument names and values, got {type(values).__name__}.")
    hints = {}
    for dtype in parser.dataclass_types:
        type_hints = typing.get_type_hints(dtype)
        hints.update({f.name: type_hints[f.name] for f in dataclasses.fields(dtype) if f.init})
    for key in values:
        if key not in hints:
            close = difflib.get_close_matches(str(key).lstrip("-").replace("-", "_"), hints, n=3)
            fail(f"{key!r} is no argument of this recipe" + (f"; did you mean {', '.join(close)}?" if close else "."))
    try:
        values = {key: _file_value(key, hints[key], value) for key, value in values.items()}
    except ValueError as error:
        fail(str(error))
    try:
        return parser.parse_dict(values)
    except SSEArgumentError as error:
        fail(f"{error.option.removeprefix('--')}: {error.reason}")


def _file_value(key: str, tp: Any, value: Any) -> Any:
    """`value` of field `key` (type `tp`) from an arguments file, as the command line would read it: a bool, int or
    float field takes its type or the text the command line takes, a list of them a list; else a ValueError naming
    `key`. Other fields keep their value for their own checks."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else ()
    optional = type(None) in args
    if optional and len(args) == 2:
        tp = next(arg for arg in args if arg is not type(None))
    if typing.get_origin(tp) is list and typing.get_args(tp) and typing.get_args(tp)[0] in (bool, int, float):
        if not isinstance(value, list):
            raise ValueError(f"{key} must be a list, e.g. [1, 2], got {value!r}.")
        return [_file_value(f"{key}[{i}]", typing.get_args(tp)[0], item) for i, item in enumerate(value)]
    if tp not in (bool, int, float) or (value is None and optional):
        return value
    if tp is bool:
        return check_switch(key, value)
    kind = "an integer" if tp is int else "a number"
    if isinstance(value, str):
        try:
            return tp(value.strip())
        except ValueError:
            raise ValueError(f"{key} must be {kind}, got the text {value!r}.") from None
    if is_integer(value) or (tp is float and is_number(value)):
        return value
    raise ValueError(f"{key} must be {kind}, got {value!r}.")


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


def require_room_for_text(tokenizer, max_seq_length: int, texts: int = 1) -> None:
    """Fail clearly, naming --max_seq_length, when it leaves no room for `texts` texts (2 for sentence pairs) beside the
    special tokens the tokenizer adds: below that, truncation gives up (and keeps whole inputs) or empties the texts."""
    special = tokenizer.num_special_tokens_to_add(pair=texts == 2)
    shortest = special + texts
    if max_seq_length < shortest:
        each = "pair of texts" if texts == 2 else "text"
        raise ValueError(
            f"--max_seq_length {max_seq_length} leaves no room for text: the tokenizer adds {special} special tokens "
            f"to each {each}, so {shortest} is the shortest length that keeps a token of each text. Give "
            f"--max_seq_length {shortest} or more."
        )


def warn_idle(**reasons: str | None) -> None:
    """Warn about each option given that does nothing under the others given: `option=why` (None: not idle)."""
    for option, why in reasons.items():
        if why:
            warnings.warn(f"--{option} does nothing: {why}. Drop it, or set what it needs.", UserWarning, stacklevel=3)


def _tidy_help(parser: HfArgumentParser) -> None:
    """`--help` with the recipes' own headed groups (SSE) first, those of one heading as one (the SSE options and
    the search's), and a `--no_X` help that says what it does; a usage line short enough that an error under it
    is seen (the options' list would run to 150 lines)."""
    positional, general, *named = parser._action_groups
    by_title: dict[str, argparse._ArgumentGroup] = {}
    for group in named:
        first = by_title.setdefault(group.title, group)
        if first is not group:
            first._group_actions.extend(group._group_actions)
    parser._action_groups = [positional, *by_title.values(), general]
    parser.usage = (
        "%(prog)s [--option value ...] | %(prog)s ARGS.json | %(prog)s ARGS.yaml  (--help lists the options)"
    )
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
    for name in ("__main__", "run_glue", "run_mlm", "run_setup", "run_report", "data_sources", "sse_hf"):
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
    require_deepspeed_backend(training_args.ddp_backend)
    output_args = next(args for args in parsed if isinstance(args, OutputArguments))
    output_args.actions_given = tuple(action for action in actions if getattr(training_args, action))
    if not output_args.actions_given:
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
