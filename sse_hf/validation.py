"""The checks of user-given values, in one place: one definition of an integer, a number and a switch for every
module.

Python and numpy integers count as integers, Python and numpy reals as numbers; bools count as neither. A switch
(a boolean option) is a bool, 0 or 1, or one of the texts the command line takes for it: `bool("false")` is True,
so text read from a JSON or YAML file must never be tested for truth as it is.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

# The texts HfArgumentParser takes for a boolean option (transformers.hf_argparser.string_to_bool), any case.
TRUE_TEXTS = ("true", "yes", "t", "y", "1")
FALSE_TEXTS = ("false", "no", "f", "n", "0")


def is_integer(value: Any) -> bool:
    """True for Python and numpy integers, not for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for Python and numpy integers and reals, not for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """A checked number as a Python int or float (numpy scalars would not save as JSON), else `value` as it is."""
    if is_integer(value):
        return int(value)
    return float(value) if is_number(value) else value


def check_probability(name: str, value: Any) -> float | int:
    """`value` as a Python number if it is a real number in [0, 1], else a ValueError naming `name`."""
    if not is_number(value):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r} ({type(value).__name__}).")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}. Typical values are 0.01 to 0.2.")
    return plain(value)


def check_positive_int(name: str, value: Any) -> int:
    """`value` as a Python int if it is a positive integer, else a ValueError naming `name`."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_fraction(name: str, value: Any, *, low_open: bool, high_open: bool, what: str = "a fraction") -> float | int:
    """`value` as a Python number if it is a number within the bounds 0 and 1 (each open or closed), else a ValueError
    naming `name` and the interval."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    inside = is_number(value) and not math.isnan(value)
    if inside:
        inside = (0.0 < value if low_open else 0.0 <= value) and (value < 1.0 if high_open else value <= 1.0)
    if not inside:
        raise ValueError(f"{name} must be {what} in {interval}, got {value!r}.")
    return plain(value)


def check_switch(name: str, value: Any) -> bool:
    """`value` as a bool if it is a bool, 0 or 1, or a text the command line takes for one (true/false, yes/no, t/f,
    y/n, 1/0, any case), else a ValueError naming `name`: a file's "false" must never count as true."""
    if isinstance(value, bool):
        return value
    if is_integer(value) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_TEXTS + FALSE_TEXTS:
        return value.strip().lower() in TRUE_TEXTS
    raise ValueError(f"{name} must be true or false (or yes/no, 1/0), got {value!r}.")
