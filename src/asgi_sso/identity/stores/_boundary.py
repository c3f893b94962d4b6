"""A SQL store's one boundary to SQLAlchemy: a backend failure becomes ``StoreUnavailable``."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from asgi_sso._log import Throttle, held_back
from asgi_sso.errors import SSOError, StoreUnavailable

__all__ = ["StoreBoundary"]

_S = TypeVar("_S")
_P = ParamSpec("_P")
_T = TypeVar("_T")


class StoreBoundary:
    """Decorates a store's async methods: any failure but an ``SSOError`` is a 503.

    A database that is down fails every request that needs it, so the warning is
    logged once a minute (with a count of the rest), naming the exception type only:
    a driver's message may quote SQL, its values or the URL.

    Args:
        what: the store's name in messages, e.g. ``"user store"``.
        logger: where the warning goes.
    """

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what
        self._logger = logger
        self._trouble = Throttle()

    def __call__(
        self, method: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]
    ) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
        """Wrap ``method``."""

        @functools.wraps(method)
        async def wrapper(store: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return await method(store, *args, **kwargs)
            except SSOError:
                raise
            except Exception as exc:
                self._unavailable(exc)
                raise StoreUnavailable(f"the {self._what} is unavailable") from exc

        return wrapper

    def _unavailable(self, exc: Exception) -> None:
        count = self._trouble.allow(self._what)
        if count is not None:
            self._logger.warning(
                "the %s (SQL) is unavailable (%s)%s",
                self._what,
                type(exc).__name__,
                held_back(count),
            )
