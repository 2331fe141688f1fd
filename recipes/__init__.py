"""The recipes: scripts a user runs (`run_glue.py`, `run_mlm.py`, `demo.py`), their shared plumbing (`kit`), and
the drivers behind the published evidence (`evidence`). A package so that all of them import one another by name."""
