"""Read a case's conventional ``expected`` keys; a value of the wrong shape is a broken case."""

from typing import Any

# Graders raise ValueError for a broken case: the job records it as a grade error, so a
# case nobody can grade never counts as a pass (nor as the candidate's failure).


def string_list(expected: dict[str, Any], key: str) -> list[str] | None:
    """``expected[key]`` as a list of strings (one string counts as a list); None when absent."""
    value = expected.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return list(value)
    raise ValueError(f"expected.{key} must be a string or a list of strings")


def flag(expected: dict[str, Any], key: str) -> bool | None:
    """``expected[key]`` as a bool; None when absent. "yes" or 1 are refused, not guessed."""
    value = expected.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"expected.{key} must be true or false")
    return value


def non_negative_number(expected: dict[str, Any], key: str, *, integer: bool = False) -> float | None:
    """``expected[key]`` as a number >= 0 (an int when ``integer``); None when absent."""
    value = expected.get(key)
    if value is None:
        return None
    types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, types) or value < 0:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"expected.{key} must be {kind} >= 0")
    return value
