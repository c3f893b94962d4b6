"""Check a settings Struct's values against its annotations when it is built.

msgspec checks types when it decodes, not when a Struct is built in Python:
``Issuer(algorithms="RS256")`` would keep the string, and code reading it as a
list would see ``"R"``, ``"S"``, ``"2"``…; a ``dict`` given for a ``Secret``
would fail on the first request with an ``AttributeError``. :func:`conform`
finds such a value and says what the field takes, and turns a list given for
a tuple or a frozenset into one (so a frozen setting never changes under it).
A value is never quoted: it may be a secret.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

__all__ = ["conform"]

_TEXT: Final = (str, bytes, bytearray)
_COLLECTIONS: Final = frozenset({tuple, list, Sequence, frozenset, set})
# What a plug-in (a store, a mapper) is never: plain data, or a class not yet built.
_NOT_PLUGINS: Final = (type, *_TEXT, int, float, list, tuple, dict)

_Check = Callable[[Any], bool]
_STR: Final = frozenset({str})
# Per Struct class: (field, its annotation, a quick test that a value fits as it is).
_PLANS: dict[type, tuple[tuple[str, Any, _Check], ...]] = {}


class _Wrong(Exception):
    """A value does not fit its annotation; the message says what would."""


def conform(obj: msgspec.Struct) -> str | None:
    """Check (and normalise) every field of ``obj``; the first problem, or ``None``.

    Lists become tuples (``tuple[...]`` and ``Sequence`` fields) or frozensets; an
    ``int`` is a ``float`` too; ``bool`` is never an ``int``; NaN is never a number.
    A value that fits as it is costs one quick test (connections are built by the
    thousand); only the others take the path that converts or explains.
    """
    cls = type(obj)
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _PLANS[cls] = tuple(
            (name, hints[name], _fits(hints[name])) for name in cls.__struct_fields__
        )
    for name, annotation, fits in plan:
        value = getattr(obj, name)
        if fits(value):
            continue
        try:
            fixed = _conform(value, annotation)
        except _Wrong as exc:
            return f"{cls.__name__}.{name} takes {_describe(annotation)}, got {exc}"
        if fixed is not value:
            msgspec.structs.force_setattr(obj, name, fixed)
    return None


def _fits(tp: Any) -> _Check:
    """A test that a value fits ``tp`` exactly as it is (no conversion); never raises."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = tuple(_fits(a) for a in args)
        if len(options) == 2:  # X | None, mostly
            first, second = options
            return lambda v: first(v) or second(v)
        return lambda v: any(fits(v) for fits in options)
    if origin is typing.Literal:
        return lambda v: any(v == a and type(v) is type(a) for a in args)
    if origin in (tuple, Sequence, frozenset):
        kind = frozenset if origin is frozenset else tuple
        if args and args[0] is str:  # the common case, tested at C speed
            return lambda v: type(v) is kind and set(map(type, v)) <= _STR
        item = _fits(args[0]) if args else _anything
        return lambda v: type(v) is kind and all(item(i) for i in v)
    if origin in (dict, Mapping):
        key, item = (_fits(args[0]), _fits(args[1])) if args else (_anything, _anything)
        return lambda v: type(v) is dict and all(key(k) and item(i) for k, i in v.items())
    if origin is not None or tp is Any or tp is object:
        return _never if origin is not None else _anything
    return _plain_fits(tp)


def _plain_fits(tp: Any) -> _Check:
    if tp is type(None):
        return lambda v: v is None
    if tp is float:
        return lambda v: (type(v) is float and v == v) or type(v) is int  # NaN != NaN
    if tp is int:
        return lambda v: type(v) is int
    if tp in (str, bool):
        return lambda v: type(v) is tp
    if getattr(tp, "_is_protocol", False):
        return _never  # the careful path checks its methods
    if isinstance(tp, type):
        return lambda v: isinstance(v, tp)
    return _anything


def _anything(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _got(value: object) -> str:
    # What was given, by kind only (never the value: it may be a secret), and the fix.
    if isinstance(value, type):
        return f"the class {value.__name__}: pass an instance, {value.__name__}(...)"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return _a(type(value).__name__)


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _conform(value: Any, tp: Any) -> Any:
    """``value`` as ``tp`` holds it (possibly converted); raises :class:`_Wrong`."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, typing.get_args(tp))
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise _Wrong(_got(value) if not isinstance(value, str) else "another string")
    if origin is not None:
        return _generic(value, origin, typing.get_args(tp))
    return _plain(value, tp)


def _union(value: Any, options: tuple[Any, ...]) -> Any:
    problems: list[str] = []
    for option in options:
        try:
            return _conform(value, option)
        except _Wrong as exc:
            if option is type(None) or _bare(option) == "unset":
                continue
            if typing.get_origin(option) in _COLLECTIONS and isinstance(
                value, list | tuple | set | frozenset
            ):
                raise  # a list given for a list: what is wrong is inside it
            problems.append(str(exc))
    # One real option (``X | None``): its own explanation is the most precise.
    raise _Wrong(problems[0] if len(problems) == 1 else _explain(value, options))


def _explain(value: Any, options: tuple[Any, ...]) -> str:
    # A string where a list belongs is the common mistake: say so.
    if isinstance(value, str) and any(typing.get_origin(o) in _COLLECTIONS for o in options):
        return "a single str (it would be read character by character): put it in a list"
    return _got(value) + _secret_hint(value, options)


def _secret_hint(value: Any, options: tuple[Any, ...]) -> str:
    names = {getattr(o, "__name__", "") for o in options}
    if "Secret" in names and isinstance(value, str | bytes):
        return ": wrap it, Secret(...)"
    return ""


def _generic(value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if origin is Callable:
        if callable(value) and not isinstance(value, type):
            return value
        raise _Wrong(_got(value))
    if origin in (tuple, Sequence, list):
        if isinstance(value, _TEXT):
            raise _Wrong(
                "a single str (it would be read character by character): put it in a list"
                if isinstance(value, str)
                else _got(value)
            )
        if not isinstance(value, list | tuple):
            raise _Wrong(_got(value))
        item = args[0] if args else Any
        items = tuple(_item(v, item) for v in value)
        same = isinstance(value, tuple) and all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items
    if origin in (frozenset, set):
        if isinstance(value, _TEXT) or not isinstance(value, list | tuple | set | frozenset):
            raise _Wrong(_got(value) if not isinstance(value, str) else "a single str")
        members = frozenset(_item(v, args[0]) for v in value)
        return value if isinstance(value, frozenset) and members == value else members
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Wrong(_got(value))
        key, item = args if args else (Any, Any)
        fixed = {_item(k, key): _item(v, item) for k, v in value.items()}
        unchanged = all(fixed[k] is v for k, v in value.items()) and type(value) is dict
        return value if unchanged else fixed
    return _plain(value, origin)


def _item(value: Any, tp: Any) -> Any:
    try:
        return _conform(value, tp)
    except _Wrong as exc:
        raise _Wrong(f"an entry that is {exc}") from None


def _plain(value: Any, tp: Any) -> Any:
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is None:
            return value
        raise _Wrong(_got(value))
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and math.isnan(value):
                raise _Wrong("NaN")
            return value
        raise _Wrong(_got(value))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Wrong(_got(value))
    if getattr(tp, "_is_protocol", False):
        if isinstance(value, _NOT_PLUGINS):
            raise _Wrong(_got(value))
        missing = [m for m in _protocol_methods(tp) if not callable(getattr(value, m, None))]
        if missing:
            raise _Wrong(f"a {type(value).__name__} without {', '.join(missing)}()")
        return value
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Wrong(_got(value) + _secret_hint(value, (tp,)))
    return value


_PROTOCOL_METHODS: dict[type, tuple[str, ...]] = {}


def _protocol_methods(proto: type) -> tuple[str, ...]:
    known = _PROTOCOL_METHODS.get(proto)
    if known is None:
        names: list[str] = []
        for base in proto.__mro__:
            if base in (object, typing.Generic) or not getattr(base, "_is_protocol", False):
                continue
            if base is typing.Protocol:
                continue
            names += [
                n for n, v in vars(base).items() if not n.startswith("_") and inspect.isfunction(v)
            ]
        known = _PROTOCOL_METHODS[proto] = tuple(dict.fromkeys(names))
    return known


def _describe(tp: Any) -> str:
    """The annotation in words: ``a list of str``, ``a Secret or None``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in args if _bare(a) != "unset")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, Sequence, list, frozenset, set):
        return f"a list of {_bare(args[0]) if args else 'values'}"
    if origin in (dict, Mapping):
        return f"a mapping of {_bare(args[0])} to {_describe(args[1])}" if args else "a mapping"
    if origin is Callable:
        return "a callable"
    if tp is type(None):
        return "None"
    return _a(_bare(tp))


def _bare(tp: Any) -> str:
    if typing.get_origin(tp) is not None or tp is type(None):
        return _describe(tp)
    name = getattr(tp, "__name__", str(tp))
    if name == "UnsetType":
        return "unset"
    return str(name)
