"""The service configuration: one YAML file, every key overridable from the environment.

Loading order: built-in defaults, then the YAML file (optional), then environment
variables. An environment variable is ``TOCSIN_`` followed by the key path, nested keys
joined by ``__``, case-insensitive: ``TOCSIN_LISTEN=0.0.0.0:9095``,
``TOCSIN_SMTP__PORT=2525``, ``TOCSIN_WEBHOOK__BASIC_AUTH__PASSWORD=...``.

Environment values are typed by the key they set: string keys take the value verbatim
(so ``TOCSIN_SMTP__PASSWORD=yes#1`` stays that string), numbers and booleans are parsed
as YAML scalars, list keys accept a YAML flow list (``[a, b]``) or a comma-separated
string (``rules/,extra-rules/``), and an empty value clears an optional key. A
``TOCSIN_`` variable that names no key is an error that suggests the closest valid one;
:data:`NON_CONFIG_ENV` lists the few ``TOCSIN_`` variables that are not config keys.

Relative paths (``rules`` entries, the SQLite file of ``state_url``, ``smtp.ca_file``)
are resolved against the **current working directory** of the process, like every
command-line tool; run ``tocsin serve`` from the project directory or use absolute paths.

The models are strict (``extra="forbid"``): an unknown key is rejected with a
suggestion, and every error names the key path (and the file position or environment
variable it came from). Secrets (``smtp.password``, ``webhook.bearer_token``,
``webhook.basic_auth.password``, ``api.tokens[].token``, ``acks.link_key``) are
:class:`pydantic.SecretStr`: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from router.config.service import ServiceConfig
from router.errors import ConfigError
from router.yamlsrc import SourceFile, read_yaml

__all__ = ["ENV_PREFIX", "NON_CONFIG_ENV", "env_names", "load_command_config", "load_config"]

ENV_PREFIX = "TOCSIN_"
#: ``TOCSIN_`` variables that are not config keys (ignored by :func:`load_config`).
NON_CONFIG_ENV: frozenset[str] = frozenset({"TOCSIN_CONFIG", "TOCSIN_REQUIRE_SERVICES",
                                            "TOCSIN_API_TOKEN"})  # the last: tocsin incidents ack
_SECRET_KEYS = frozenset({"password", "bearer_token", "secret_access_key",
                          "vapid_private_key", "api_token", "token", "token_sha256", "link_key"})


# --------------------------------------------------------------------------- loading


def load_command_config(path: Path | None, environ: Mapping[str, str]) -> ServiceConfig:
    """The config of a ``tocsin`` command: ``--config PATH``, else the file named by
    ``TOCSIN_CONFIG``, else the built-in defaults; then ``environ`` overrides."""
    if path is None and environ.get("TOCSIN_CONFIG"):
        path = Path(environ["TOCSIN_CONFIG"])
    return load_config(path, environ)


def load_config(path: Path | str | None, environ: Mapping[str, str]) -> ServiceConfig:
    """Build the config from defaults, the YAML file at ``path`` (if any), then ``environ``.

    Raises ConfigError with every problem, each naming its key path and origin.
    """
    data: dict[str, Any] = {}
    source: SourceFile | None = None
    file_label = str(path) if path is not None else None
    if path is not None:
        data, source = _read_yaml(Path(path))
    env_origins = _apply_env(data, environ)
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            _describe(err, source=source, env_origins=env_origins, file_label=file_label)
            for err in exc.errors(include_url=False)
        ]
        header = f"invalid configuration ({len(lines)} problem{'s' if len(lines) > 1 else ''}):"
        raise ConfigError("\n".join([header, *(f"  {line}" for line in lines)])) from None


def env_names() -> list[str]:
    """Every environment variable name that sets a config key, sorted."""
    return sorted(ENV_PREFIX + "__".join(p).upper() for p, _ in _leaf_fields(ServiceConfig, ()))


def _read_yaml(path: Path) -> tuple[dict[str, Any], SourceFile]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    src, problems = read_yaml(str(path), text, typed=True)
    if problems:
        raise ConfigError(_problem_lines([_where(p.file, p.line, p.col) + p.message
                                          for p in problems]))
    assert src is not None
    if src.data is None:
        src.data = {}
    if not isinstance(src.data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of keys, not a list/value")
    return src.data, src


def _where(file: str, line: int, col: int) -> str:
    """``file:line:col: `` (``file: `` without a line)."""
    return f"{file}:{line}:{col}: " if line else f"{file}: "


def _problem_lines(lines: list[str]) -> str:
    if len(lines) == 1:
        return lines[0]
    header = f"invalid configuration ({len(lines)} problems):"
    return "\n".join([header, *(f"  {line}" for line in lines)])


# --------------------------------------------------------------------------- environment


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _is_model(annotation: Any) -> bool:
    inner = _unwrap_optional(annotation)
    return isinstance(inner, type) and issubclass(inner, BaseModel)


def _leaf_fields(
    model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        if _is_model(info.annotation):
            yield from _leaf_fields(_unwrap_optional(info.annotation), path)
        else:
            yield path, info.annotation


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Merge ``TOCSIN_*`` variables into ``data``; return which key came from which variable."""
    leaves = dict(_leaf_fields(ServiceConfig, ()))
    by_env = {ENV_PREFIX + "__".join(path).upper(): path for path in leaves}
    origins: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_CONFIG_ENV:
            continue
        path = by_env.get(upper)
        if path is None:
            problems.append(_unknown_env(name, by_env))
            continue
        value = _env_value(environ[name], leaves[path])
        target = data
        for key in path[:-1]:
            child = target.get(key)
            if not isinstance(child, dict):
                child = {}
                target[key] = child
            target = child
        target[path[-1]] = value
        origins[path] = name
    if problems:
        raise ConfigError("\n".join(problems))
    return origins


def _unknown_env(name: str, by_env: Mapping[str, tuple[str, ...]]) -> str:
    close = difflib.get_close_matches(name.upper(), list(by_env), n=1, cutoff=0.6)
    if close:
        hint = f" — did you mean {close[0]}?"
    else:
        hint = f" (valid names: {', '.join(sorted(by_env))})"
    return f"unknown environment variable {name}: it sets no config key{hint}"


def _env_value(raw: str, annotation: Any) -> Any:
    inner = _unwrap_optional(annotation)
    if raw == "" and _is_optional(annotation):
        return None
    if inner is str or inner is SecretStr or typing.get_origin(inner) is Literal:
        return raw
    if typing.get_origin(inner) is list:
        text = raw.strip()
        if text.startswith("["):
            return _yaml_scalar(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return _yaml_scalar(raw)


def _yaml_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # let the model reject it with the field's own wording


# --------------------------------------------------------------------------- error wording


def _describe(
    err: Mapping[str, Any],
    *,
    source: SourceFile | None,
    env_origins: Mapping[tuple[str, ...], str],
    file_label: str | None,
) -> str:
    loc = tuple(str(part) for part in err["loc"])
    key = ".".join(loc) if loc else "(top level)"
    origin = _origin(err["loc"], source, env_origins, file_label)
    kind = err["type"]
    secret = bool(loc) and loc[-1] in _SECRET_KEYS
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = sorted(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f" — did you mean '{close[0]}'?" if close else f" (valid keys: {', '.join(valid)})"
        return f"{origin}unknown key '{key}'{hint}"
    words = _plain_words(kind, err)
    got = ""
    if not secret and kind not in ("missing", "value_error") and "input" in err:
        got = f" (got {err['input']!r})"
    return f"{origin}{key}: {words}{got}"


def _origin(
    raw_loc: tuple[str | int, ...],
    source: SourceFile | None,
    env_origins: Mapping[tuple[str, ...], str],
    file_label: str | None,
) -> str:
    loc = tuple(str(part) for part in raw_loc)
    for end in range(len(loc), 0, -1):
        if loc[:end] in env_origins:
            return f"{env_origins[loc[:end]]}: "
    mark = source.position(raw_loc) if source is not None else None
    if mark is not None and source is not None:
        return _where(source.path, mark.line, mark.col)
    return f"{file_label}: " if file_label else ""


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = ServiceConfig
    for part in loc:
        info = model.model_fields.get(part)
        if info is None or not _is_model(info.annotation):
            return None
        model = _unwrap_optional(info.annotation)
    return model


def _plain_words(kind: str, err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    simple = {
        "missing": "is required",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a mapping of keys",
        "model_type": "must be a mapping of keys",
        "model_attributes_type": "must be a mapping of keys",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {op} {bound}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])
