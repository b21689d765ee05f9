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
``webhook.basic_auth.password``, ``api.tokens[].token``) are :class:`pydantic.SecretStr`:
they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic import model_validator as _model_validator

from router.backpressure import BackpressureConfig
from router.bytecache import DEFAULT_CACHE_BYTES
from router.channels_config import SnsConfig, WebPushConfig
from router.errors import ConfigError
from router.incidents.config import IncidentsConfig
from router.kafka_config import KafkaConfig
from router.retention import RetentionConfig

__all__ = [
    "ENV_PREFIX",
    "NON_CONFIG_ENV",
    "SCOPES",
    "ApiConfig",
    "ApiTokenConfig",
    "BasicAuthConfig",
    "DispatchConfig",
    "LaneConfig",
    "LanesConfig",
    "LogConfig",
    "MemoryConfig",
    "ServiceConfig",
    "SmtpConfig",
    "TemplatesConfig",
    "WebhookConfig",
    "env_names",
    "load_command_config",
    "load_config",
    "parse_listen",
]

ENV_PREFIX = "TOCSIN_"
#: ``TOCSIN_`` variables that are not config keys (ignored by :func:`load_config`).
NON_CONFIG_ENV: frozenset[str] = frozenset({"TOCSIN_CONFIG", "TOCSIN_REQUIRE_SERVICES"})
_SECRET_KEYS = frozenset({"password", "bearer_token", "secret_access_key",
                          "vapid_private_key", "api_token", "token", "token_sha256"})
#: API token scopes; ``admin`` implies every other one (docs/service.md, "API tokens").
Scope = Literal["ingest", "read", "operate", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "operate", "admin")
_MIN_TOKEN_CHARS = 16
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Strict):
    """The SMTP server the email channel submits to."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "tocsin@localhost"
    timeout_s: float = Field(default=10.0, gt=0)
    ca_file: str | None = None  # PEM bundle to trust for starttls/tls (default: system CAs)
    pool_size: int = Field(default=4, ge=0)  # idle connections kept for reuse (0: none)
    pool_idle_s: float = Field(default=30.0, gt=0)  # how long an idle connection is kept

    @_model_validator(mode="after")
    def _auth_pair(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp.username and smtp.password must be given together")
        return self


class BasicAuthConfig(_Strict):
    """HTTP basic credentials Alertmanager sends (``http_config.basic_auth``)."""

    username: str = Field(min_length=1)
    password: SecretStr


class WebhookConfig(_Strict):
    """Inbound webhook and HTTP server settings. With no credentials, the webhook is open.

    The connection settings (timeouts, cap, keep-alive) apply to every HTTP route.
    """

    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthConfig | None = None
    # Sized for a group of 10,000 real Alertmanager alerts (measured 200-400 bytes each,
    # 1.6 KiB each allowed): a 413 makes Alertmanager drop the group until its next flush.
    max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    max_alerts: int = Field(default=20_000, ge=1)  # alerts in one request
    max_labels: int = Field(default=128, ge=1)  # labels of one alert
    max_label_bytes: int = Field(default=16_384, ge=64)  # one alert's label names + values
    max_annotation_bytes: int = Field(default=65_536, ge=64)  # one alert's annotations
    header_timeout_s: float = Field(default=10.0, gt=0)  # to send a request's headers
    body_timeout_s: float = Field(default=30.0, gt=0)  # to send a webhook body
    max_connections: int = Field(default=1024, ge=1)  # open HTTP connections, all routes
    keepalive_timeout_s: float = Field(default=75.0, gt=0)  # idle keep-alive connection
    keepalive_max_requests: int = Field(default=1000, ge=1)  # requests per connection
    parse_thread_bytes: int = Field(default=262_144, ge=0)  # larger: parsed off the loop
    max_large_bodies: int = Field(default=4, ge=1)  # such bodies read and parsed at once

    @field_validator("bearer_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be blank (remove the key to disable token auth)")
        return value


class ApiTokenConfig(_Strict):
    """One API credential: a name (for logs and 403s), the token, and its scopes.

    The token is given exactly one way: ``token`` (inline), ``token_file`` (a file whose
    content, stripped, is the token: a mounted secret; read at start) or
    ``token_sha256`` (the lowercase hex SHA-256 of the token, so the file holds no
    usable secret). Clients send ``Authorization: Bearer <token>``.
    """

    name: str = Field(min_length=1)
    token: SecretStr | None = None
    token_file: str | None = None
    token_sha256: str | None = None
    scopes: list[Scope] = Field(min_length=1)

    @_model_validator(mode="after")
    def _one_source(self) -> ApiTokenConfig:
        given = [key for key in ("token", "token_file", "token_sha256")
                 if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"api token {self.name!r}: give exactly one of token, "
                             f"token_file, token_sha256 (got {', '.join(given) or 'none'})")
        if self.token is not None and (
                len(self.token.get_secret_value().strip()) < _MIN_TOKEN_CHARS):
            raise ValueError(f"api token {self.name!r}: the token must be at least "
                             f"{_MIN_TOKEN_CHARS} characters")
        if self.token_sha256 is not None and not _SHA256_HEX.match(self.token_sha256):
            raise ValueError(f"api token {self.name!r}: token_sha256 must be 64 lowercase "
                             "hex digits (printf %s TOKEN | sha256sum)")
        if self.token_file is not None:
            self._read_file()
        return self

    def _read_file(self) -> bytes:
        assert self.token_file is not None
        try:
            secret = Path(self.token_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"api token {self.name!r}: cannot read token_file "
                             f"{self.token_file}: {exc.strerror or exc}") from None
        if len(secret) < _MIN_TOKEN_CHARS:
            raise ValueError(f"api token {self.name!r}: token_file {self.token_file} must "
                             f"hold a token of at least {_MIN_TOKEN_CHARS} characters")
        return secret

    def digest(self) -> bytes:
        """The SHA-256 digest of the token (what requests are compared against)."""
        if self.token_sha256 is not None:
            return bytes.fromhex(self.token_sha256)
        if self.token is not None:
            secret = self.token.get_secret_value().strip().encode()
        else:
            secret = self._read_file()
        return hashlib.sha256(secret).digest()


class ApiConfig(_Strict):
    """Credentials of the HTTP API, by scope (docs/service.md, "API tokens").

    With no token here and no webhook credentials, every endpoint is open (local
    development; a warning is logged at start). ``public_metrics`` leaves ``/metrics``
    open even when tokens are configured (a scraper without credentials).
    """

    tokens: list[ApiTokenConfig] = Field(default_factory=list)
    public_metrics: bool = False

    @_model_validator(mode="after")
    def _unique_names(self) -> ApiConfig:
        names = [token.name for token in self.tokens]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"api token names must be unique: {', '.join(twice)} repeated")
        return self


class LaneConfig(_Strict):
    """One channel's lane (``dispatch.lanes.<channel>``); a key left out takes the
    ``dispatch`` default (``concurrency``, ``breaker_*``) or, for ``rate_per_s``, the
    channel section's (``sns.rate_per_s``, ``sns.topic_rate_per_s``,
    ``webpush.rate_per_s``; e-mail: unlimited)."""

    concurrency: int | None = Field(default=None, ge=1, le=1024)
    rate_per_s: float | None = Field(default=None, ge=0)  # 0 = unlimited
    burst: float = Field(default=1.0, ge=1)
    breaker_failures: int | None = Field(default=None, ge=0)  # 0 = no circuit breaker
    breaker_cooldown_s: float | None = Field(default=None, gt=0)


class LanesConfig(_Strict):
    """``dispatch.lanes``: the lane of each channel (``TOCSIN_DISPATCH__LANES__SMS__...``)."""

    email: LaneConfig = Field(default_factory=LaneConfig)
    sms: LaneConfig = Field(default_factory=LaneConfig)
    topic: LaneConfig = Field(default_factory=LaneConfig)
    push: LaneConfig = Field(default_factory=LaneConfig)


class DispatchConfig(_Strict):
    """Outbox dispatch: per-channel lanes, retry schedule, delivery deadline, claim lease."""

    # Send slots of each channel's lane (each lane has its own; lanes.<channel> overrides).
    concurrency: int = Field(default=8, ge=1, le=1024)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    deadline_s: float = Field(default=3600.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=0.5, gt=0)
    # Circuit breaker of each lane: open after this many consecutive retryable failures
    # or timeouts (0 disables), for breaker_cooldown_s, then one probe.
    breaker_failures: int = Field(default=5, ge=0)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    lanes: LanesConfig = Field(default_factory=LanesConfig)

    @_model_validator(mode="after")
    def _backoff_order(self) -> DispatchConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("dispatch.backoff_max_s must be >= dispatch.backoff_initial_s")
        return self


class LogConfig(_Strict):
    """Log level and format (JSON lines for machines, console for humans)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class MemoryConfig(_Strict):
    """Bounds on what the service keeps in memory (router/bytecache.py)."""

    # All caches keyed by alert content together (fingerprints, routing verdicts,
    # accepted alerts awaiting routing), in bytes of labels and annotations kept.
    cache_bytes: int = Field(default=DEFAULT_CACHE_BYTES, ge=0)


class TemplatesConfig(_Strict):
    """The budget of one message render (router/rules/templates.py)."""

    render_budget_s: float = Field(default=1.0, gt=0, le=60)
    max_output_chars: int = Field(default=256 * 1024, ge=1024)
    # A flush rendering more messages than this renders in a worker thread (0: always).
    offload_renders: int = Field(default=32, ge=0)


class ServiceConfig(_Strict):
    """The whole service configuration (``tocsin serve --config FILE``)."""

    listen: str = "127.0.0.1:9095"
    state_url: str = "sqlite:///var/tocsin.db"
    rules: list[str] = Field(default_factory=lambda: ["rules/"], min_length=1)
    # Seconds between checks of the rule files for changes (hot reload); 0 disables.
    rules_poll_interval_s: float = Field(default=2.0, ge=0)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)  # API tokens and their scopes
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)  # incident scheduler
    retention: RetentionConfig = Field(default_factory=RetentionConfig)  # history kept
    # backlog bounds above which ingest is held back (webhook 503, Kafka paused)
    backpressure: BackpressureConfig = Field(default_factory=BackpressureConfig)
    kafka: KafkaConfig | None = None  # Kafka source / cluster ingest (docs/kafka.md)
    sns: SnsConfig | None = None  # SMS and topics through AWS SNS (docs/channels.md)
    webpush: WebPushConfig | None = None  # Web Push (docs/channels.md)

    @field_validator("listen")
    @classmethod
    def _listen_valid(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url_valid(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            raise ValueError(
                "must be a sqlite URL such as sqlite:///var/tocsin.db (relative path) or "
                "sqlite:////srv/tocsin/state.db (absolute path)"
            )
        return value

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``; IPv6 hosts without brackets."""
        return parse_listen(self.listen)


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6addr]:port`` into ``(host, port)``.

    Raises ValueError with a readable message (used as a pydantic validator too).
    """
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected [ipv6]:port such as [::1]:9095, got {value!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(
                f"expected host:port such as 127.0.0.1:9095 (IPv6: [::1]:9095), got {value!r}"
            )
    if not host:
        raise ValueError(f"the host is missing in {value!r} (use 0.0.0.0:PORT for all interfaces)")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535 in {value!r}")
    return host, int(port_text)


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
    positions: dict[tuple[str, ...], str] = {}
    file_label = str(path) if path is not None else None
    if path is not None:
        data, positions = _read_yaml(Path(path))
    env_origins = _apply_env(data, environ)
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            _describe(err, positions=positions, env_origins=env_origins, file_label=file_label)
            for err in exc.errors(include_url=False)
        ]
        header = f"invalid configuration ({len(lines)} problem{'s' if len(lines) > 1 else ''}):"
        raise ConfigError("\n".join([header, *(f"  {line}" for line in lines)])) from None


def env_names() -> list[str]:
    """Every environment variable name that sets a config key, sorted."""
    return sorted(ENV_PREFIX + "__".join(p).upper() for p, _ in _leaf_fields(ServiceConfig, ()))


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of keys, not a list/value")
    positions: dict[tuple[str, ...], str] = {}
    if node is not None:
        _collect_positions(node, (), str(path), positions)
    return data, positions


def _collect_positions(
    node: yaml.Node, prefix: tuple[str, ...], file: str, out: dict[tuple[str, ...], str]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            out[key] = f"{file}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
            _collect_positions(value_node, key, file, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, str(index))
            out[key] = f"{file}:{item.start_mark.line + 1}:{item.start_mark.column + 1}"
            _collect_positions(item, key, file, out)


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
    positions: Mapping[tuple[str, ...], str],
    env_origins: Mapping[tuple[str, ...], str],
    file_label: str | None,
) -> str:
    loc = tuple(str(part) for part in err["loc"])
    key = ".".join(loc) if loc else "(top level)"
    origin = _origin(loc, positions, env_origins, file_label)
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
    loc: tuple[str, ...],
    positions: Mapping[tuple[str, ...], str],
    env_origins: Mapping[tuple[str, ...], str],
    file_label: str | None,
) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in env_origins:
            return f"{env_origins[loc[:end]]}: "
    for end in range(len(loc), 0, -1):
        if loc[:end] in positions:
            return f"{positions[loc[:end]]}: "
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
