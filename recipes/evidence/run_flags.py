"""The run_glue flags every study run shares beside its design: all three splits, evaluation batch, logging
every 4 steps (the loss curve and the adaptive schedule), no checkpoints, no trackers, a fresh output folder."""

RUN_FLAGS = [
    "--do_train",
    "--do_eval",
    "--do_predict",
    "--per_device_eval_batch_size",
    "64",
    "--logging_steps",
    "4",
    "--save_strategy",
    "no",
    "--report_to",
    "none",
    "--overwrite_output_dir",
]
