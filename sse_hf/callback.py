"""`SSECallback`: SSE for `transformers.Trainer` in one line, as a thin adapter over `patch_model`."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback, ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .config import VERSION_KEY, SSEConfig
from .graph import SSEGraph
from .handle import SSEHandle, get_handle
from .lookups import WORD_PIECE_ROLES
from .patch import check_override_names, config_type_error, patch_model
from .search import check_trial_space, trial_config
from .statistics import process_count, stats_of, sum_across_processes, word_piece_totals
from .trainer_internals import continue_log_window, open_log_window, running_trainer, training_trainer
from .validation import is_integer, is_number
from .vocabulary import as_tokenizer

GRAPH_NAME = "sse_graph.safetensors"  # the kNN graph of graph="knn", kept in each checkpoint for an exact resume


def _trained_module(model: Any, event_kwargs: dict) -> Any:
    """The torch module a trainer trains: setfit passes its `SetFitModel` as `model` and the module as `st_model`."""
    st_model = event_kwargs.get("st_model")
    if not isinstance(model, nn.Module) and isinstance(st_model, nn.Module):
        return st_model
    return model


def _per_process(value: float, device: Any) -> list[float]:
    """`value` of every process of an initialised torch.distributed group, by rank ([value] in one process)."""
    if process_count() == 1:
        return [value]
    local = torch.tensor([value], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(local) for _ in range(process_count())]
    torch.distributed.all_gather(gathered, local)
    return [float(tensor.item()) for tensor in gathered]


def _process_rank() -> int:
    """This process's rank in an initialised torch.distributed group (0 without one)."""
    return torch.distributed.get_rank() if process_count() > 1 else 0


def _check_label_sse_reaches_the_labels(args, trainer, config: SSEConfig) -> None:
    """Label SSE swaps the `labels` the model receives; Trainer takes them out first under these two options."""
    if config.label_p <= 0:
        return
    smoothing = getattr(args, "label_smoothing_factor", 0) or 0
    compute_loss_func = getattr(trainer, "compute_loss_func", None)
    if smoothing > 0 or compute_loss_func is not None:
        used = "label_smoothing_factor" if smoothing > 0 else "compute_loss_func"
        raise ValueError(
            f"SSEConfig.label_p={config.label_p} swaps the labels the model receives, but with {used} set Trainer "
            "takes the labels out before the forward pass (label_smoothing_factor and compute_loss_func both do), so "
            "no label would be swapped. Set label_p=0, or train without label_smoothing_factor / compute_loss_func."
        )


def _warn_if_no_step_logs(args, state, config: SSEConfig) -> None:
    """The adaptive schedule follows the logged training loss: with no log before the end, p stays 0 all run."""
    if config.p_schedule != "adaptive":
        return
    strategy = getattr(getattr(args, "logging_strategy", None), "value", getattr(args, "logging_strategy", None))
    logging_steps = getattr(args, "logging_steps", None)
    if not isinstance(logging_steps, (int, float)) or logging_steps <= 0:
        return
    steps = logging_steps if logging_steps >= 1 else math.ceil(logging_steps * max(state.max_steps, 1))
    if strategy == "no" or (strategy == "steps" and state.max_steps > 0 and steps >= state.max_steps):
        warnings.warn(
            f"sse_hf: p_schedule='adaptive' raises p as the logged training loss falls, but no training loss is "
            f"logged before the end of this run (logging_strategy={strategy!r}, logging_steps={logging_steps}, "
            f"max_steps={state.max_steps}), so p stays 0 throughout. Log more often (e.g. logging_steps=10) or use "
            "another p_schedule.",
            UserWarning,
            stacklevel=2,
        )


# The fields a graph="knn" graph is built from: the checkpoint's graph is kept only while none of them changed.
KNN_GRAPH_FIELDS = ("graph", "graph_k", "exclude_token_ids")


def _stored_config(saved: Any) -> dict | None:
    """The SSEConfig fields an SSECallback saved in a checkpoint, as a dict; None if there are none."""
    stored = saved.get("args", {}).get("config") if isinstance(saved, dict) else None
    return stored if isinstance(stored, dict) else None


def _warn_if_config_changed(saved: Any, config: SSEConfig) -> None:
    """Resuming under other SSE settings than the checkpoint's: name each field that differs, and when it applies."""
    stored = _stored_config(saved)
    if stored is None:
        return
    current = config.to_dict()
    changed = [name for name in current if name in stored and stored[name] != current[name]]
    if not changed:
        return
    listed = "; ".join(f"{name}: {stored[name]!r} in the checkpoint, {current[name]!r} now" for name in changed)
    notes = []
    if config.graph == "knn" and set(changed) & set(KNN_GRAPH_FIELDS):
        notes.append(
            f"the kNN graph is built anew from the current embeddings with graph_k={config.graph_k} (not taken "
            "from the checkpoint, whose graph, if any, was built under the old settings)"
        )
    if config.p_schedule == "adaptive" and stored.get("p_schedule") == "adaptive":
        moved = [name for name in ("adaptive_start", "adaptive_full") if name in changed]
        if moved:
            notes.append(
                f"{' and '.join(moved)} apply from the next logged training loss on (p keeps the checkpoint's factor "
                "until then, and the reference loss stays the checkpoint's)"
            )
    warnings.warn(
        f"sse_hf: resuming from a checkpoint trained with different SSE settings ({listed}). The run goes on with "
        f"the new ones{': ' + '; '.join(notes) if notes else ''}, and its counts and logs mix both. Resume with the "
        "checkpoint's sse_config.json settings for an exact continuation.",
        UserWarning,
        stacklevel=2,
    )


def _stored_counts(stored: Any) -> dict[str, list[int]]:
    """The counts an SSECallback saved in a checkpoint's trainer_state.json; a clear error if they are corrupted."""
    if stored is None:
        return {}
    attributes = stored.get("attributes", {}) if isinstance(stored, dict) else None
    counts = attributes.get("counts", {}) if isinstance(attributes, dict) else None
    valid = isinstance(counts, dict) and all(
        isinstance(role, str)
        and isinstance(values, list)
        and len(values) == 3
        and all(is_integer(v) and v >= 0 for v in values)
        and values[2] <= values[1] <= values[0]
        for role, values in counts.items()
    )
    if not valid:
        raise ValueError(
            "The checkpoint's trainer_state.json holds a corrupted SSECallback state: "
            "stateful_callbacks.SSECallback.attributes.counts must map each role to [tokens_seen, tokens_eligible, "
            f"tokens_swapped] (non-negative integers, seen >= eligible >= swapped), got {stored!r}. Restore the file "
            "from the checkpoint you saved, or delete the SSECallback entry to restart the SSE counts from zero."
        )
    return {role: list(values) for role, values in counts.items()}


def _stored_adaptive(stored: Any, config: SSEConfig) -> tuple[float | None, float] | None:
    """The adaptive schedule's (reference loss, factor) saved by an SSECallback; a clear error if corrupted."""
    if config.p_schedule != "adaptive" or not isinstance(stored, dict):
        return None
    attributes = stored.get("attributes")
    value = attributes.get("adaptive") if isinstance(attributes, dict) else None
    if value is None:
        return None
    reference, factor = (
        (value.get(key) for key in ("reference_loss", "factor")) if isinstance(value, dict) else ("", None)
    )
    if not (reference is None or is_number(reference)) or not (is_number(factor) and 0.0 <= factor <= 1.0):
        raise ValueError(
            "The checkpoint's trainer_state.json holds a corrupted SSECallback state: "
            'stateful_callbacks.SSECallback.attributes.adaptive must be {"reference_loss": a number or null, '
            f'"factor": a number in [0, 1]}}, got {value!r}. Restore the file from the checkpoint you saved, or '
            "delete the SSECallback entry to restart the adaptive schedule."
        )
    return (None if reference is None else float(reference)), float(factor)


# The roles of the plain sse/p and sse/swap_rate: the inputs (an encoder-decoder's encoder inputs). The decoder's
# inputs are logged apart, as sse/decoder/p and sse/decoder/swap_rate.
INPUT_ROLES = tuple(role for role in WORD_PIECE_ROLES if role != "decoder")


def _logged_groups(counts: dict[str, list[int]]) -> dict[str, list[int]]:
    """Per logged group ("word_pieces" for the inputs, else the role), [eligible, swapped] summed over its roles."""
    groups: dict[str, list[int]] = {}
    for role, (_, eligible, swapped) in counts.items():
        group = groups.setdefault("word_pieces" if role in INPUT_ROLES else role, [0, 0])
        group[0], group[1] = group[0] + eligible, group[1] + swapped
    return groups


def _stored_log_window(stored: Any) -> dict | None:
    """The log interval open at a checkpoint, saved by an SSECallback (`log_window`); a clear error if corrupted."""
    attributes = stored.get("attributes") if isinstance(stored, dict) else None
    window = attributes.get("log_window") if isinstance(attributes, dict) else None
    if window is None:
        return None
    logged = window.get("logged") if isinstance(window, dict) else None
    keys = ("step", "last_logged_step", "loss_sums")
    # `logged` is {} when no log came before the checkpoint: still a window to restore
    step, last, sums = (window.get(key) for key in keys) if isinstance(logged, dict) else (None, None, None)
    valid = (
        isinstance(logged, dict)
        and is_integer(step)
        and is_integer(last)
        and 0 <= last <= step
        and isinstance(sums, list)
        and len(sums) > 0
        and all(is_number(loss) for loss in sums)  # nan where the run's loss was nan: the resume replays it
        and all(
            isinstance(group, str)
            and isinstance(values, list)
            and len(values) == 2
            and all(is_integer(v) and v >= 0 for v in values)
            and values[1] <= values[0]
            for group, values in logged.items()
        )
    )
    if not valid:
        raise ValueError(
            "The checkpoint's trainer_state.json holds a corrupted SSECallback state: "
            'stateful_callbacks.SSECallback.attributes.log_window must be {"step": int, "last_logged_step": int <= '
            'step, "loss_sums": [a number per process], "logged": {group: [eligible, swapped]}}, got '
            f"{window!r}. Restore the file from the checkpoint you saved, or delete the log_window entry (the resumed "
            "run then logs as a plain Trainer resume does)."
        )
    return window


class SSECallback(TrainerCallback, ExportableState):
    """Patches the model with SSE when training begins and removes it when training ends.

    Logs `sse/p` and the realised `sse/swap_rate` (since the previous log; over all training in the final
    summary, which adds the inputs' `sse/tokens_seen`, `sse/tokens_eligible` and `sse/tokens_swapped`) into every
    training log, summed over the processes of a distributed run, so they reach `trainer.state.log_history`, the
    `report_to` trackers and `trainer.train().metrics`. Writes `sse_config.json` into the output directory and
    every checkpoint. If `trainer.train()` may raise, wrap it in
    `with callback:` (or call `callback.remove()`) so the hooks are removed even then.

    Args:
        config (`SSEConfig` or `dict`, *optional*):
            The SSE settings (`SSEConfig()`'s defaults when None). A dict is read as `SSEConfig.from_dict` reads it.
        tokenizer (`PreTrainedTokenizerBase`, *optional*, keyword only in practice):
            The model's tokenizer: swaps then draw only its real word pieces, never its special or reserved
            tokens. When None, the Trainer's `processing_class` is used; without either, `config.vocab_size` and
            the config's special ids, with a warning.
        **overrides:
            `SSEConfig` fields set on top of `config`, e.g. `SSECallback(p=0.1, tokenizer=tok)`. An unknown name is
            an error that suggests the field meant (`prob=` -> `p=`).
    """

    def __init__(self, config: SSEConfig | dict | None = None, tokenizer=None, **overrides: Any):
        if isinstance(config, dict):
            if VERSION_KEY not in config:  # a saved config (a checkpoint's) loads as saved files do
                check_override_names(config, "SSECallback")
            config = SSEConfig.from_dict(config)
        if config is None:
            config = SSEConfig()
        if not isinstance(config, SSEConfig):
            raise config_type_error(config, "SSECallback")
        check_override_names(overrides, "SSECallback")
        self.config = config.replace(**overrides) if overrides else config
        self.tokenizer = as_tokenizer(tokenizer, "SSECallback(tokenizer=)")
        self.handle: SSEHandle | None = None
        # per role: [seen, eligible, swapped] of earlier train() runs and checkpoints (restored on resume)
        self._previous: dict[str, list[int]] = {}
        self._logged: dict[str, tuple[int, int]] = {}  # per role: eligible, swapped at the previous log
        self._adaptive: dict | None = None  # the adaptive schedule's reference loss and factor (kept on resume)
        self._run_dir: str | None = None  # where this run's checkpoints go: output_dir, or run-N in a search
        self._search_base: SSEConfig | None = None  # under hyperparameter_search: the config the trials change
        self._trial_config: SSEConfig | None = None  # ... and the one this callback set for the latest trial
        # Under torch.distributed: this run's counts summed over the processes where the latest checkpoint was decided
        # (`_sum_counts_for_checkpoint`), for `state()`, with this process's own counts then and the step; None in one
        # process, where `state()` saves this process's own counts.
        self._checkpoint_run: dict[str, list[int]] | None = None
        self._checkpoint_own: dict[str, list[int]] = {}
        self._checkpoint_step: int | None = None
        # ... and the Trainer's log interval open there: (step of the previous log, each process's loss summed since).
        # A `log_window` restored by `from_state`.
        self._checkpoint_window: tuple[int, list[float]] | None = None
        self._restored_window: dict | None = None

    # ----- Trainer events ---------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        model = _trained_module(model, kwargs)
        trainer, handler, resume_from = running_trainer(self)
        if handler is not None and sum(isinstance(cb, SSECallback) for cb in handler.callbacks) > 1:
            raise ValueError(
                "This Trainer has more than one SSECallback: one SSECallback per Trainer is allowed (each would patch "
                "the same model). Pass a single SSECallback; set table_p or label_p on its SSEConfig for more tables."
            )
        # Trainer's state holds what this callback's state() gave when train() began; a resume (step > 0) holds the
        # checkpoint's instead. Only that one is restored: a retry (auto_find_batch_size) starts from this call's.
        saved = (state.stateful_callbacks or {}).get(type(self).__name__) if state.global_step > 0 else None
        if isinstance(saved, list):
            raise ValueError(
                "The checkpoint's trainer_state.json holds the state of several SSECallbacks: one SSECallback per "
                "Trainer is allowed. Resume with the single SSECallback you trained with (or delete the entries)."
            )
        if saved is not None and getattr(args, "restore_callback_states_from_checkpoint", False):
            raise ValueError(
                "restore_callback_states_from_checkpoint=True makes Trainer replace your SSECallback by a copy "
                "rebuilt from the checkpoint: without your tokenizer, and your instance would never see its counts. "
                "Resume without that option: SSECallback restores its own state from the checkpoint anyway (its "
                "counts and the adaptive schedule)."
            )
        if getattr(state, "trial_params", None) is not None:  # a hyperparameter_search trial: its own SSE fields
            saved = self._start_trial(state, saved, trainer)
        _check_label_sse_reaches_the_labels(args, trainer, self.config)
        tokenizer = self.tokenizer if self.tokenizer is not None else as_tokenizer(processing_class, "", strict=False)
        stored = _stored_counts(saved)  # all checked before anything changes
        # A resume restores the checkpoint's counts and schedule; a fresh train() (this Trainer's again, or another
        # Trainer's) starts both afresh, as Trainer starts its own state: one callback reused never mixes runs.
        adaptive = _stored_adaptive(saved, self.config)
        window = _stored_log_window(saved)
        graph = self._checkpoint_graph(args, state, resume_from, saved)
        _warn_if_config_changed(saved, self.config)
        _warn_if_no_step_logs(args, state, self.config)
        # A previous train() that raised may have left this callback's own hooks behind: replace those.
        left_behind = self.handle is not None and get_handle(model) is self.handle
        self.handle = patch_model(model, self.config, tokenizer=tokenizer, graph=graph, replace=left_behind)
        self.handle.set_step(state.global_step, state.max_steps)
        self._logged = {}
        self._checkpoint_run = {} if process_count() > 1 else None
        self._checkpoint_own, self._checkpoint_step = {}, state.global_step
        self._previous = stored
        if adaptive is not None:
            self.handle.reference_loss, self.handle.factor = adaptive
        if window is not None and window["step"] == state.global_step:
            self._reopen_log_window(window, trainer, state)
        self._move_to_front(handler)
        self._run_dir = self._output_dir(args, state, trainer)
        if state.is_world_process_zero and self._run_dir:
            self.config.save_pretrained(self._run_dir)

    def _checkpoint_graph(self, args, state, resume_from, saved: Any) -> SSEGraph | None:
        """On resume, the kNN graph built at the start of training and kept in the checkpoint (an exact resume);
        None, to build it again, when the checkpoint's settings for it differ (`_warn_if_config_changed` says so)."""
        if self.config.graph != "knn" or state.global_step == 0:
            return None
        stored, current = _stored_config(saved), self.config.to_dict()
        if stored is not None and any(stored.get(name) != current[name] for name in KNN_GRAPH_FIELDS):
            return None
        folders = [
            resume_from if isinstance(resume_from, (str, os.PathLike)) else None,
            getattr(args, "resume_from_checkpoint", None),
            os.path.join(args.output_dir or "", f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"),
        ]
        for folder in folders:
            if folder and os.path.isfile(os.path.join(folder, GRAPH_NAME)):
                return SSEGraph.load(os.path.join(folder, GRAPH_NAME))
        warnings.warn(
            f"sse_hf: resuming at step {state.global_step} with graph='knn', but the checkpoint holds no {GRAPH_NAME} "
            "(saved by an older sse_hf?): the graph is built again from the current embeddings, so the resumed run is "
            "not an exact continuation.",
            UserWarning,
            stacklevel=2,
        )
        return None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.handle is not None:
            self.handle.set_step(state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self._sum_counts_for_checkpoint(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._sum_counts_for_checkpoint(args, state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.handle is None or logs is None or not any(key in logs for key in ("loss", "train_loss")):
            return
        # Every process logs (the reporters pick the main one): sum this run's counts over the processes first, as
        # transformers' MoERouterHealthCallback all-reduces, so the rates are the global ones. One process: as they are.
        run_counts = sum_across_processes(self.handle.counts())
        # Step logs get the rate since the previous log; the end-of-training summary the overall rate.
        metrics = self._interval_metrics(stats_of(run_counts))
        if "train_loss" in logs:  # each logged rate over all training, role by role as in the step logs
            counts = self._counts(run_counts)
            # the inputs' counts too (summed over the processes like the rates), so a record can keep the totals
            seen, eligible, swapped = word_piece_totals(counts, INPUT_ROLES)
            metrics.update({"sse/tokens_seen": seen, "sse/tokens_eligible": eligible, "sse/tokens_swapped": swapped})
            metrics["sse/swap_rate"] = swapped / eligible if eligible else 0.0
            for role, role_stats in stats_of(counts).items():
                if f"sse/{role}/swap_rate" in metrics:
                    metrics[f"sse/{role}/swap_rate"] = role_stats["swap_rate"]
        elif isinstance(logs.get("loss"), (int, float)):
            self.handle.observe_loss(logs["loss"])  # the adaptive schedule's p for the next interval
        logs.update(metrics)
        # Trainer copies `logs` into log_history before callbacks run: update that copy as well.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(metrics)

    def on_save(self, args, state, control, **kwargs):
        self._warn_if_checkpoint_counts_are_stale(state)
        if not state.is_world_process_zero:
            return
        checkpoint = os.path.join(self._run_dir or args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(checkpoint):
            self.config.save_pretrained(checkpoint)
            if self.config.graph == "knn" and self.handle is not None and self.handle.graph is not None:
                self.handle.graph.save(os.path.join(checkpoint, GRAPH_NAME))

    def on_train_end(self, args, state, control, **kwargs):
        self.remove()

    # ----- helpers ----------------------------------------------------------------------------
    def _start_trial(self, state, saved: Any, trainer: Any = None) -> Any:
        """A `hyperparameter_search` trial: the trial's `sse_<field>` parameters on the config and, unless the trial
        resumes its own checkpoint, fresh counts and schedule state. Returns the saved state to restore, if any."""
        first = self.config is not self._trial_config  # the first trial, or the user set callback.config since
        if first:
            self._search_base = self.config
        check_trial_space(trainer, state.trial_params, self._search_base, first=first)
        self.config = self._trial_config = trial_config(self._search_base, state.trial_params)
        if state.global_step > 0:
            return saved
        self._previous, self._adaptive = {}, None
        return None

    def _reopen_log_window(self, window: dict, trainer: Any, state) -> None:
        """On resume, continue the log interval that was open at the checkpoint: the next logged swap rates cover it
        whole and, under the adaptive schedule, the resumed Trainer logs (and p follows) the uninterrupted run's loss
        (see `trainer_internals.continue_log_window`)."""
        before = _logged_groups(self._previous)
        self._logged = {
            group: (eligible - before.get(group, [0, 0])[0], swapped - before.get(group, [0, 0])[1])
            for group, (eligible, swapped) in window["logged"].items()
        }
        if self.config.p_schedule != "adaptive" or window["last_logged_step"] == state.global_step:
            return
        sums = window["loss_sums"]  # this process's own where the processes are as many as at the checkpoint
        loss_sum = sums[_process_rank()] if len(sums) == process_count() else sum(sums) / len(sums)
        if not continue_log_window(trainer, state.global_step, window["last_logged_step"], loss_sum, sums):
            warnings.warn(
                f"sse_hf: resuming at step {state.global_step}, between two training-loss logs, with "
                "p_schedule='adaptive', but this Trainer's logging state cannot be continued (a transformers version "
                "sse_hf does not know?): its next logged loss covers only the steps since the resume, and p follows "
                "it, so the resumed run is not an exact continuation. Resume from a checkpoint saved at a logging step "
                "(save_steps a multiple of logging_steps).",
                UserWarning,
                stacklevel=3,
            )
            return

    def _sum_counts_for_checkpoint(self, args, state, control) -> None:
        """Under torch.distributed, when a checkpoint follows this step or epoch, sum this run's counts over the
        processes for `state()`: Trainer saves the callback state from the main process alone, so the saved counts
        must already be global. Every process reaches this point with the same `control`: DefaultFlowCallback has
        just decided the save (step, epoch and final saves); under save_strategy="best" the save follows an
        evaluation, decided on metrics every process shares, and evaluation adds no counts."""
        if self._checkpoint_run is None or self.handle is None:
            return
        strategy = getattr(args.save_strategy, "value", args.save_strategy)
        if control.should_save or (strategy == "best" and control.should_evaluate):
            self._checkpoint_own = self.handle.counts()
            self._checkpoint_run = sum_across_processes(self._checkpoint_own)
            self._checkpoint_step = state.global_step
            trainer = running_trainer(self)[0]
            opened = open_log_window(trainer)
            if opened is not None and control.should_log and state.global_step > opened[0]:
                # the log at this step empties the interval before the save
                opened = (state.global_step, [0.0] * process_count())
            elif opened is not None:
                opened = (opened[0], _per_process(opened[1], trainer._tr_loss.device))
            self._checkpoint_window = opened

    def _saved_run_counts(self) -> dict[str, list[int]] | None:
        """This run's counts for `state()`: under torch.distributed, the sums of the latest checkpoint decision plus
        this process's own since (none when the save follows that decision, as it does but for a late request); in one
        process None (its own counts)."""
        if self._checkpoint_run is None or self.handle is None:
            return None
        counts = {role: list(values) for role, values in self._checkpoint_run.items()}
        for role, own in self.handle.counts().items():
            before = self._checkpoint_own.get(role, [0, 0, 0])
            counts[role] = [a + b - c for a, b, c in zip(counts.get(role, [0, 0, 0]), own, before)]
        return counts

    def _warn_if_checkpoint_counts_are_stale(self, state) -> None:
        """A save that a callback after SSECallback asked for: the counts saved are those of an earlier point."""
        if self._checkpoint_run is None or self._checkpoint_step == state.global_step:
            return
        if state.is_world_process_zero:
            warnings.warn(
                f"sse_hf: the checkpoint at step {state.global_step} holds the SSE counts summed over all processes up "
                f"to step {self._checkpoint_step} and the main process's own since: the save was asked for after "
                "SSECallback's on_step_end/on_epoch_end (by a callback after it in the list), where the processes "
                "could not sum them. A resume from it undercounts the other processes' steps in between in the "
                "end-of-training totals; ask for saves through save_strategy, or in a callback before SSECallback.",
                UserWarning,
                stacklevel=2,
            )

    def _output_dir(self, args, state, trainer) -> str | None:
        """Where Trainer writes this run's checkpoints: `output_dir`, or the trial's `run-N` folder under a search."""
        if getattr(state, "trial_params", None) is None:
            return args.output_dir
        if trainer is None or not callable(getattr(trainer, "_get_output_dir", None)):
            return args.output_dir
        return trainer._get_output_dir(getattr(trainer, "_trial", None))

    def _interval_metrics(self, stats: dict[str, dict[str, float]]) -> dict[str, float]:
        """sse/p and sse/swap_rate for the (encoder) inputs; sse/<role>/p and .../swap_rate for the decoder inputs,
        labels and tables, each role its own rate since the previous log (`stats`: this run's counts so far)."""
        groups = {"word_pieces": [role for role in stats if role in INPUT_ROLES]}
        groups.update({role: [role] for role in stats if role not in INPUT_ROLES})
        effective_p = self.handle.effective_p_by_role()
        metrics = {"sse/p": self.handle.effective_p}
        for group, roles in groups.items():
            eligible = sum(stats[role]["tokens_eligible"] for role in roles)
            swapped = sum(stats[role]["tokens_swapped"] for role in roles)
            last_eligible, last_swapped = self._logged.get(group, (0, 0))
            self._logged[group] = (eligible, swapped)
            rate = (swapped - last_swapped) / (eligible - last_eligible) if eligible > last_eligible else 0.0
            if group == "word_pieces":
                metrics["sse/swap_rate"] = rate
            else:
                metrics[f"sse/{group}/p"] = effective_p[group]
                metrics[f"sse/{group}/swap_rate"] = rate
        return metrics

    def _move_to_front(self, handler: CallbackHandler | None) -> None:
        """Run before the reporting callbacks, so that what `on_log` adds reaches TensorBoard, W&B and co, and right
        after DefaultFlowCallback, so that `on_step_end` sees its save decision (see THE workaround above)."""
        if handler is None:
            return
        handler.callbacks.remove(self)
        flow = [i for i, cb in enumerate(handler.callbacks) if isinstance(cb, DefaultFlowCallback)]
        handler.callbacks.insert(flow[0] + 1 if flow else 0, self)

    def _adaptive_state(self) -> dict | None:
        """The adaptive schedule's reference loss and current factor, or None for other schedules."""
        if self.config.p_schedule != "adaptive":
            return None
        if self.handle is None:
            return self._adaptive
        return {"reference_loss": self.handle.reference_loss, "factor": self.handle.factor}

    def remove(self) -> None:
        """Remove the hooks now (idempotent), keeping the run's counts in `stats()`."""
        if self.handle is None:
            return
        self._previous = self._counts()
        self._adaptive = self._adaptive_state()
        self.handle.remove()
        self.handle = None
        self._checkpoint_run = None

    def _counts(self, run_counts: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
        """Per role, [seen, eligible, swapped] over all training so far (resumed runs included): the earlier runs'
        counts plus this run's (`run_counts`, else this process's own)."""
        counts = {role: list(values) for role, values in self._previous.items()}
        if run_counts is None and self.handle is not None:
            run_counts = self.handle.counts()
        for role, run in (run_counts or {}).items():
            counts[role] = [a + b for a, b in zip(counts.get(role, [0, 0, 0]), run)]
        return counts

    def stats(self) -> dict[str, dict[str, float]]:
        """Per role (input/encoder/decoder, labels, tables): tokens seen, eligible, swapped and the rate over all
        training so far in this process (a resumed checkpoint's counts are every process's), like
        `SSEHandle.stats()`. The logged `sse/*` rates sum every process."""
        return stats_of(self._counts())

    @property
    def totals(self) -> list[int]:
        """Word-piece [tokens seen, eligible, swapped] over all training so far (resumed runs included)."""
        return word_piece_totals(self._counts(), WORD_PIECE_ROLES)

    @property
    def swap_rate(self) -> float:
        """Realised word-piece swap rate over all training so far (resumed runs included)."""
        _, eligible, swapped = self.totals
        return swapped / eligible if eligible else 0.0

    def __enter__(self) -> SSECallback:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    # ----- checkpoint state (ExportableState) -------------------------------------------------
    @property
    def counts(self) -> dict[str, list[int]]:
        """Per role, [seen, eligible, swapped] over all training so far; set by `from_state` (checked)."""
        return self._counts()

    @counts.setter
    def counts(self, value: dict[str, list[int]]) -> None:
        self._previous = _stored_counts({"attributes": {"counts": value}})

    @property
    def adaptive(self) -> dict | None:
        """The adaptive schedule's reference loss and factor (None for other schedules); set by `from_state`."""
        return self._adaptive_state()

    @adaptive.setter
    def adaptive(self, value: dict | None) -> None:
        if _stored_adaptive({"attributes": {"adaptive": value}}, self.config) is not None:
            self._adaptive = dict(value)

    @property
    def log_window(self) -> dict | None:
        """The Trainer's log interval open now (at a checkpoint): its step, the step of the previous log, each process's
        training loss summed since and the [eligible, swapped] totals at that log, per logged group; None outside
        training (but for one restored by `from_state`)."""
        trainer = training_trainer(self)
        if self.handle is None or trainer is None:
            return self._restored_window
        step = trainer.state.global_step
        if self._checkpoint_run is None:
            opened = open_log_window(trainer)
            opened = None if opened is None else (opened[0], [opened[1]])
        else:  # under torch.distributed, the one every process took part in at the checkpoint decision
            opened = self._checkpoint_window if self._checkpoint_step == step else None
        if opened is None:
            return None
        before = _logged_groups(self._previous)
        groups = set(before) | set(self._logged)
        logged = {
            group: [a + b for a, b in zip(before.get(group, [0, 0]), self._logged.get(group, (0, 0)))]
            for group in sorted(groups)
        }
        return {"step": step, "last_logged_step": opened[0], "loss_sums": opened[1], "logged": logged}

    @log_window.setter
    def log_window(self, value: dict | None) -> None:
        self._restored_window = _stored_log_window({"attributes": {"log_window": value}})

    def state(self) -> dict:
        # Under torch.distributed: the earlier counts plus this run's summed over the processes at the checkpoint.
        attributes = {"counts": self._counts(self._saved_run_counts())}
        if self.config.p_schedule == "adaptive":
            attributes["adaptive"] = self._adaptive_state()
        window = self.log_window
        if window is not None:
            attributes["log_window"] = window
        return {"args": {"config": self.config.to_saved_dict()}, "attributes": attributes}
