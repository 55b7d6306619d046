"""Pluggable pieces (priors, likelihoods) named by the user: a registry name, ``module.path:Class`` or
``path/to/file.py:Class``.

A researcher writes a :class:`~pyrodps.models.WeightPrior` (or another base) in a file of their own and
names it on the command line or in a config; nothing in pyrodps changes:

    --weight-prior my_priors.py:KumaraswamyWeight --weight-prior-kwargs a=2,b=5
    --weight-prior mypackage.priors:KumaraswamyWeight --weight-prior-kwargs '{"a": 2, "b": 5}'

* :func:`load_class` resolves a spec to a class and checks it subclasses the expected base;
* :func:`parse_kwargs` turns a dict, a JSON object or ``key=value`` pairs into keyword arguments;
* :func:`build` does both and calls the constructor, passing the values pyrodps supplies itself
  (``injected``, e.g. ``rho_theta`` and ``num_train`` for the calibrated θ prior) only to a constructor
  that names them.

Every mistake is a :class:`~pyrodps.errors.ValidationError` that names the offending argument.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from pyrodps.errors import ValidationError

__all__ = ["build", "load_class", "parse_kwargs"]

_FILE_MODULE_PREFIX = "pyrodps_plugin_"


# ----------------------------------------------------------------------------- classes
def _describe(registry: dict[str, type]) -> str:
    names = ", ".join(registry) or "none"
    return f"choose one of {names}, or give module.path:ClassName or path/to/file.py:ClassName"


def _is_file_spec(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _import_file(where: str, argument: str) -> Any:
    """Import ``where`` (a ``.py`` file, relative paths from the current directory) under a module name
    unique to its resolved path; a file already imported and unchanged since is reused."""
    path = Path(where).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.is_file():
        raise ValidationError(argument, f"no such file {str(path)!r} (from {where!r})")
    name = _FILE_MODULE_PREFIX + hashlib.sha1(str(path).encode()).hexdigest()[:16]
    mtime = path.stat().st_mtime_ns
    cached = sys.modules.get(name)
    if cached is not None and getattr(cached, "__pyrodps_mtime__", None) == mtime:
        return cached
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(argument, f"cannot import {str(path)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    module.__pyrodps_mtime__ = mtime
    sys.modules[name] = module  # dataclasses, pickling and typing look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise ValidationError(argument, f"cannot import {str(path)!r}: {type(e).__name__}: {e}") from e
    return module


def _import_module(where: str, argument: str) -> Any:
    try:
        return importlib.import_module(where)
    except Exception as e:  # ImportError, or anything the module raises while it runs
        raise ValidationError(argument, f"cannot import module {where!r}: {type(e).__name__}: {e}") from e


def load_class(spec: str | type, registry: dict[str, type], base: type, argument: str) -> type:
    """The class named by ``spec``: a key of ``registry``, ``module.path:ClassName`` or
    ``path/to/file.py:ClassName`` (a file outside the package, imported by path; a relative path is
    resolved from the current directory). A class passes through. The class must be a concrete
    subclass of ``base``; any problem raises :class:`ValidationError` naming ``argument``."""
    if isinstance(spec, type):
        cls, label = spec, spec.__qualname__
    else:
        if not isinstance(spec, str) or not spec.strip():
            raise ValidationError(argument, f"must be a non-empty name; {_describe(registry)}; got {spec!r}")
        spec = spec.strip()
        if spec in registry:
            return registry[spec]
        if ":" not in spec:
            raise ValidationError(argument, f"unknown {base.__name__} {spec!r}; {_describe(registry)}")
        where, _, attr = spec.rpartition(":")
        if not where or not attr:
            raise ValidationError(argument, f"{spec!r} must read module.path:ClassName or file.py:ClassName")
        module = _import_file(where, argument) if _is_file_spec(where) else _import_module(where, argument)
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                candidates = sorted(
                    n for n, v in vars(module).items()
                    if isinstance(v, type) and issubclass(v, base) and v is not base and not inspect.isabstract(v)
                )
                found = f"; it defines {', '.join(candidates)}" if candidates else f"; it defines no {base.__name__}"
                raise ValidationError(argument, f"{where!r} has no class {attr!r}{found}")
            obj = getattr(obj, part)
        if not isinstance(obj, type):
            raise ValidationError(argument, f"{spec!r} is a {type(obj).__name__}, not a class")
        cls, label = obj, spec
    if not issubclass(cls, base):
        raise ValidationError(argument, f"{label!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ValidationError(argument, f"{label!r} is abstract: it must implement {missing}")
    return cls


# ----------------------------------------------------------------------------- keyword arguments
def _split_pairs(text: str) -> list[str]:
    """Split at commas and white space outside brackets and quotes; glue ``key = value`` back."""
    tokens, current, depth, quote = [], [], 0, ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch in "[{(":
            depth += 1
            current.append(ch)
        elif ch in "]})":
            depth -= 1
            current.append(ch)
        elif depth <= 0 and (ch == "," or ch.isspace()):
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        tokens.append("".join(current))
    merged: list[str] = []
    for tok in tokens:
        if merged and (merged[-1].endswith("=") or tok.startswith("=")):
            merged[-1] += tok
        else:
            merged.append(tok)
    return merged


def _literal(value: str) -> Any:
    """A JSON literal (numbers, true/false/null, lists, objects), else a Python literal, else the string."""
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def parse_kwargs(text: str | dict | None, argument: str) -> dict:
    """Keyword arguments from ``None`` (none), a dict (copied), a JSON object string
    (``'{"a": 2, "b": [1, 2]}'``) or ``key=value`` pairs separated by commas or spaces
    (``"a=2, b=0.5 name=abc flag=true sizes=[1,2]"``), each value read as a JSON literal where it is
    one (else as a Python literal, else kept as a string). Anything else raises :class:`ValidationError`
    naming ``argument``."""
    if text is None:
        return {}
    if isinstance(text, dict):
        bad = [k for k in text if not isinstance(k, str)]
        if bad:
            raise ValidationError(argument, f"keys must be strings, got {bad[0]!r}")
        return dict(text)
    if not isinstance(text, str):
        raise ValidationError(
            argument, f"must be a dict, a JSON object or key=value pairs, got {type(text).__name__} {text!r}"
        )
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError as e:
            raise ValidationError(argument, f"is not a valid JSON object ({e}): {text!r}") from None
        if not isinstance(value, dict):
            raise ValidationError(argument, f"must be a JSON object, got {text!r}")
        return value
    out: dict[str, Any] = {}
    for pair in _split_pairs(stripped):
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValidationError(
                argument, f"expected key=value pairs (or a JSON object); {pair!r} has no '=' in {text!r}"
            )
        if not key.isidentifier():
            raise ValidationError(argument, f"{key!r} is not a valid keyword name (in {text!r})")
        if not value:
            raise ValidationError(argument, f"{key!r} has no value (in {text!r})")
        if key in out:
            raise ValidationError(argument, f"{key!r} is given twice (in {text!r})")
        out[key] = _literal(value)
    return out


# ----------------------------------------------------------------------------- instances
def build(
    spec: str | type,
    kwargs: str | dict | None,
    registry: dict[str, type],
    base: type,
    argument: str,
    /,
    *,
    kwargs_argument: str | None = None,
    **injected: Any,
) -> Any:
    """An instance of the class named by ``spec`` (see :func:`load_class`) built from ``kwargs`` (see
    :func:`parse_kwargs`).

    The options must be parameters of the constructor (else :class:`ValidationError` naming
    ``kwargs_argument``, by default ``f"{argument}_kwargs"``, listing the accepted ones); each of
    ``injected`` is passed only if the constructor names it, and the user may not set it. A
    :class:`ValidationError` from the constructor passes through; a ``ValueError`` or ``TypeError``
    becomes one naming the class and ``kwargs_argument`` (``argument`` when no options were given).
    """
    kwargs_argument = kwargs_argument or f"{argument}_kwargs"
    cls = load_class(spec, registry, base, argument)
    options = parse_kwargs(kwargs, kwargs_argument)
    name = spec if isinstance(spec, str) else cls.__qualname__
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        params = None
    if params is not None:
        named = {p.name: p for p in params.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
        injected = {k: v for k, v in injected.items() if k in named}
        clash = sorted(set(options) & set(injected))
        if clash:
            raise ValidationError(kwargs_argument, f"{', '.join(map(repr, clash))} of {name!r} is set by pyrodps; "
                                                   "remove it from the options")
        accepted = [n for n in named if n not in injected]
        unknown = sorted(set(options) - set(named))
        if unknown and not open_ended:
            raise ValidationError(
                kwargs_argument,
                f"{name!r} ({cls.__qualname__}) takes {', '.join(accepted) or 'no options'}; "
                f"got unknown {', '.join(map(repr, unknown))}",
            )
        missing = [n for n, p in named.items()
                   if p.default is p.empty and n not in options and n not in injected]
        if missing:
            raise ValidationError(kwargs_argument, f"{name!r} ({cls.__qualname__}) needs {', '.join(missing)}")
    else:
        injected = {}
    try:
        return cls(**options, **injected)
    except ValidationError:
        raise
    except (ValueError, TypeError) as e:
        raise ValidationError(
            kwargs_argument if options else argument,
            f"{name!r} ({cls.__qualname__}) rejected {options or 'its defaults'}: {e}",
        ) from e
