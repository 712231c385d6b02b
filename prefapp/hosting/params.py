"""Parameters of the named API are checked against the endpoint's type hints, never coerced.

Coercion hides mistakes: `bool("false")` is True and `int(2.7)` is 2, so a client that sent
`precompute_ref_log_probs="false"` or `batch_size=2.7` would train something it did not ask for. `check_call`
refuses such values with a ConfigError naming the parameter, what came and what to send instead. Accepted:
`bool` only true/false; `int` a whole number (2.0 from a JSON number box is 2); `float` any number but a bool;
`str` text; `Literal[...]` one of its values; `X | None` also null.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from typing import Any, Callable, Literal

from prefapp.errors import ConfigError


def _check(name: str, value: Any, hint: Any) -> Any:
    """`value` as the endpoint should get it, or a ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check(name, value, option)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        raise ConfigError(f"{name}={value!r} is not allowed: send one of {', '.join(map(repr, choices))}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}={value!r} is not a boolean: send true or false (a JSON boolean, not text)")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name}={value!r} is not a whole number: send an integer such as "
                          f"{_whole_example(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{name}={value!r} is not a finite number: send a number such as 0.1 (not text)")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}={value!r} is not text: send a string")
    return value  # other hints (dicts, lists) are the endpoint's to check


def _whole_example(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return str(max(1, round(value)))
    return "2"


@functools.lru_cache(maxsize=256)
def _spec(fn: Callable, method: bool) -> tuple[inspect.Signature, dict[str, Any]]:
    """`fn`'s signature (without `self` for a `method`) and resolved type hints, read once per function: reading them
    costs about 1 ms, a whole vote in DuckDB about 7. Keyed by the plain function, so no instance is kept alive."""
    signature = inspect.signature(fn)
    if method:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return signature, typing.get_type_hints(fn)


def check_call(fn: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """`args` and `kwargs` for `fn` checked against its type hints (see the module docstring)."""
    function = getattr(fn, "__func__", None)  # a bound method: its function
    signature, hints = _spec(function or fn, function is not None)
    bound = signature.bind(*args, **kwargs)
    for name, value in bound.arguments.items():
        if name in hints and name != "return":
            bound.arguments[name] = _check(name, value, hints[name])
    return bound.args, bound.kwargs
