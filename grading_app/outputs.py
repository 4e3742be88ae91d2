"""Validate submitted outputs (API, CLI file, run_eval) into plain items, naming each bad path."""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from grading_app.models.runs import MAX_TRIALS
from grading_app.traces import normalise_trace

# metric key -> accepted types (bool is excluded from numbers explicitly below)
METRIC_TYPES: dict[str, tuple[type, ...]] = {
    "latency_ms": (int, float),
    "ttft_ms": (int, float),
    "input_tokens": (int,),
    "output_tokens": (int,),
    "cost_usd": (int, float),
    "retries": (int,),
    "refused": (bool,),
    "escalated": (bool,),
}


@dataclass(frozen=True)
class OutputItem:
    case: str
    output: Any
    trace: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    trial: int = 1  # repeated trials of one case: 1, 2, ... (grading_app.models.runs.MAX_TRIALS)


# What the result columns hold: PositiveIntegerField is 0..2**31-1 everywhere Django runs;
# durations and costs are finite floats, bounded so a typo is refused, not stored.
MAX_COUNT = 2**31 - 1
MAX_QUANTITY = 1e12  # ms (about 31 years) or USD


def _out_of_range(name: str, value: float) -> str:
    if value < 0:
        return "Must not be negative."
    if METRIC_TYPES[name] == (int,) and value > MAX_COUNT:
        return f"Must be at most {MAX_COUNT:,}."
    if value != value or value > MAX_QUANTITY:  # NaN compares unequal to itself
        return f"Must be a finite number at most {MAX_QUANTITY:g}."
    return ""


def check_metrics(metrics: Any, path: str, errors: dict[str, str]) -> None:
    if not isinstance(metrics, dict):
        errors[path] = "Metrics must be an object."
        return
    for name, value in metrics.items():
        types = METRIC_TYPES.get(name)
        if types is None:
            errors[f"{path}.{name}"] = f"Unknown metric (known: {', '.join(METRIC_TYPES)})."
        elif value is not None and (
            not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        ):
            kind = "true or false" if bool in types else "a number"
            errors[f"{path}.{name}"] = f"Must be {kind}."
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (problem := _out_of_range(name, value))
        ):
            errors[f"{path}.{name}"] = problem


def check_trace_and_metrics(
    entry: dict[str, Any], where: str, errors: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """An item's trace (normalised) and metrics (checked), problems added to ``errors`` by path:
    the part submitted outputs and production trace records share."""
    trace: list[dict[str, Any]] = []
    try:
        trace = normalise_trace(entry.get("trace"), path=f"{where}.trace")
    except ValidationError as exc:
        errors.update({k: "; ".join(v) for k, v in exc.message_dict.items()})
    metrics = entry.get("metrics") or {}
    check_metrics(metrics, f"{where}.metrics", errors)
    return trace, metrics


def parse_outputs(raw: Any, *, path: str = "outputs") -> list[OutputItem]:
    """Every problem is collected, so one 400 names all of them; nothing is written here."""
    if not isinstance(raw, list):
        raise ValidationError({path: "Must be a list of {case, output, trace, metrics, trial} objects."})
    errors: dict[str, str] = {}
    items: list[OutputItem] = []
    seen: set[tuple[str, int]] = set()
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            errors[where] = "Must be an object."
            continue
        unknown = set(entry) - {"case", "output", "trace", "metrics", "trial"}
        if unknown:
            errors[where] = f"Unknown key(s): {', '.join(sorted(unknown))}."
        trial = entry.get("trial", 1)
        if isinstance(trial, bool) or not isinstance(trial, int) or not 1 <= trial <= MAX_TRIALS:
            errors[f"{where}.trial"] = f"Must be a whole number from 1 to {MAX_TRIALS}: the case's trial."
            trial = 1
        key = entry.get("case")
        if not isinstance(key, str) or not key:
            errors[f"{where}.case"] = "Required: the case key."
        elif (key, trial) in seen:
            of_trial = f" (trial {trial})" if "trial" in entry else ""
            errors[f"{where}.case"] = f"Duplicate case key {key!r}{of_trial}."
        else:
            seen.add((key, trial))
        if "output" not in entry:
            errors[f"{where}.output"] = "Required: text or a JSON object (null if none)."
        elif not isinstance(entry["output"], str | dict | list | type(None)):
            errors[f"{where}.output"] = "Must be text or a JSON object."
        trace, metrics = check_trace_and_metrics(entry, where, errors)
        if not errors:
            items.append(OutputItem(key, entry.get("output"), trace, metrics, trial))
    if errors:
        raise ValidationError(errors)
    return items
