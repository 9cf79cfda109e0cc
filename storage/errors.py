"""Running a provider's code inside its driver-error translation (see `translated_errors` in
`storage.sqlite.errors` and `storage.mongodb.datastore`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)

Translation = Callable[[], AbstractContextManager[None]]


def within(translation: Translation) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: the function runs inside `translation()`."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with translation():
                return function(*args, **kwargs)

        return wrapper

    return decorate


def all_within(translation: Translation) -> Callable[[C], C]:
    """A class decorator: every public method of the class runs inside `translation()`."""

    def decorate(cls: C) -> C:
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and callable(member):
                setattr(cls, name, within(translation)(member))
        return cls

    return decorate
