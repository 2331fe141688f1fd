"""How the recipes' command lines end on a mistake the user can fix: one line with the hint, not a traceback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class RecipeError(Exception):
    """A problem the user can fix (a Hub name offline, a missing folder); its message says what to do."""


def run(main: Callable[..., Any], argv: Sequence[str] | None = None) -> None:
    """Call a recipe's `main(argv)`; a RecipeError becomes SystemExit with its message (stderr, exit status 1)."""
    try:
        main(None if argv is None else list(argv))
    except RecipeError as error:
        raise SystemExit(f"error: {error}") from None
