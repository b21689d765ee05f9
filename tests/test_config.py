"""The service config: YAML file, environment overrides, strict validation, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from router.config import ServiceConfig, env_names, load_config, parse_listen
from router.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tocsin.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env() -> None:
    """With neither file nor env, the documented defaults apply."""
    config = load_config(None, {})
    assert config.listen == "127.0.0.1:9095"
    assert config.state_url == "sqlite:///var/tocsin.db"
    assert config.rules == ["rules/"]
    assert config.webhook.max_body_bytes == 16 * 1_048_576
    assert config.log.format == "json"


def test_local_deploy_config_is_valid() -> None:
    """deploy/local/tocsin.yaml (used by `make run`) loads and points at the dev sink."""
    config = load_config(REPO / "deploy/local/tocsin.yaml", {})
    assert config.listen_address == ("127.0.0.1", 9095)
    assert config.state_url == "sqlite:///var/tocsin.db"
    assert config.rules == ["rules/"]
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == ("127.0.0.1", 1025, "none")
    assert config.smtp.from_address == "tocsin@localhost"


def test_file_values_are_read(tmp_path: Path) -> None:
    """Values from the YAML file override the defaults, nested sections included."""
    path = _write(
        tmp_path,
        "listen: 0.0.0.0:8080\nsmtp:\n  host: mail.example.org\n  port: 587\n"
        "  security: starttls\nwebhook:\n  basic_auth: {username: am, password: s3cret}\n",
    )
    config = load_config(path, {})
    assert config.listen_address == ("0.0.0.0", 8080)
    assert config.smtp.port == 587
    assert config.smtp.security == "starttls"
    assert config.webhook.basic_auth is not None
    assert config.webhook.basic_auth.password.get_secret_value() == "s3cret"


def test_env_overrides_file_with_typed_values(tmp_path: Path) -> None:
    """TOCSIN_ variables override the file; ints are parsed, nested keys use '__'."""
    path = _write(tmp_path, "smtp:\n  host: from-file\n  port: 25\n")
    config = load_config(
        path,
        {
            "TOCSIN_SMTP__HOST": "from-env",
            "TOCSIN_SMTP__PORT": "2525",
            "TOCSIN_DISPATCH__BACKOFF_MAX_S": "2.5",
            "TOCSIN_LISTEN": "[::1]:9096",
            "PATH": "/usr/bin",  # not ours: ignored
        },
    )
    assert config.smtp.host == "from-env"
    assert config.smtp.port == 2525
    assert config.dispatch.backoff_max_s == 2.5
    assert config.listen_address == ("::1", 9096)


def test_env_names_are_case_insensitive() -> None:
    """tocsin_smtp__host sets smtp.host just like TOCSIN_SMTP__HOST."""
    assert load_config(None, {"tocsin_smtp__host": "lower"}).smtp.host == "lower"


def test_env_three_levels_deep_and_secrets_verbatim() -> None:
    """Nested sections are created from env alone; string values are taken verbatim."""
    config = load_config(
        None,
        {
            "TOCSIN_WEBHOOK__BASIC_AUTH__USERNAME": "alertmanager",
            "TOCSIN_WEBHOOK__BASIC_AUTH__PASSWORD": "yes#0123",
            "TOCSIN_SMTP__SECURITY": "none",
        },
    )
    assert config.webhook.basic_auth is not None
    assert config.webhook.basic_auth.username == "alertmanager"
    assert config.webhook.basic_auth.password.get_secret_value() == "yes#0123"
    assert config.smtp.security == "none"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("rules/,extra/", ["rules/", "extra/"]),
        ("[a.yaml, b.yaml]", ["a.yaml", "b.yaml"]),
        ("only/", ["only/"]),
    ],
)
def test_env_list_forms(raw: str, expected: list[str]) -> None:
    """List keys accept a comma-separated string or a YAML flow list."""
    assert load_config(None, {"TOCSIN_RULES": raw}).rules == expected


def test_empty_env_value_clears_optional_key(tmp_path: Path) -> None:
    """An empty value unsets an optional key (here the webhook token from the file)."""
    path = _write(tmp_path, "webhook:\n  bearer_token: abc\n")
    assert load_config(path, {"TOCSIN_WEBHOOK__BEARER_TOKEN": ""}).webhook.bearer_token is None


def test_unknown_env_key_names_closest_valid_one() -> None:
    """A misspelt TOCSIN_ variable is an error that suggests the right name."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TOCSIN_SMTP__HOTS": "x"})
    assert "TOCSIN_SMTP__HOTS" in str(info.value)
    assert "did you mean TOCSIN_SMTP__HOST?" in str(info.value)


def test_non_config_tocsin_variables_are_ignored() -> None:
    """TOCSIN_REQUIRE_SERVICES (CI) and TOCSIN_CONFIG are not config keys and not errors."""
    load_config(None, {"TOCSIN_REQUIRE_SERVICES": "1", "TOCSIN_CONFIG": "x.yaml"})


def test_unknown_file_key_is_positioned_with_suggestion(tmp_path: Path) -> None:
    """An unknown key in the file names file:line:col, the key path and a suggestion."""
    path = _write(tmp_path, "listen: 127.0.0.1:9095\nsmtp:\n  hots: mail\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert f"{path}:3:3: unknown key 'smtp.hots' — did you mean 'host'?" in message


def test_type_error_from_env_names_variable_and_key() -> None:
    """A non-numeric port from env says which variable, which key and what is wrong."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TOCSIN_SMTP__PORT": "twenty-five"})
    assert "TOCSIN_SMTP__PORT: smtp.port: must be a whole number (got 'twenty-five')" in str(
        info.value
    )


def test_type_error_from_file_is_positioned(tmp_path: Path) -> None:
    """A bad enum value in the file is reported at its line with the allowed values."""
    path = _write(tmp_path, "smtp:\n  security: ssl\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert f"{path}:2:3: smtp.security: must be one of 'none', 'starttls' or 'tls'" in str(
        info.value
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Several invalid values produce one error listing each of them."""
    path = _write(tmp_path, "listen: nowhere\ndispatch:\n  concurrency: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert "2 problems" in message
    assert "listen: expected host:port" in message
    assert "dispatch.concurrency: must be >= 1" in message


def test_secret_values_never_appear_in_errors_or_repr() -> None:
    """A rejected secret is not echoed; a valid one is hidden in repr()."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TOCSIN_WEBHOOK__BEARER_TOKEN": "   "})
    assert "webhook.bearer_token" in str(info.value)
    config = load_config(None, {"TOCSIN_SMTP__USERNAME": "u", "TOCSIN_SMTP__PASSWORD": "hunter2"})
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())


def test_invalid_yaml_is_positioned(tmp_path: Path) -> None:
    """A YAML syntax error names the file, line and column."""
    path = _write(tmp_path, "listen: [unclosed\n")
    with pytest.raises(ConfigError, match=r"tocsin\.yaml:\d+:\d+: invalid YAML"):
        load_config(path, {})


def test_repeated_key_is_positioned_like_in_rule_files(tmp_path: Path) -> None:
    """A key given twice in one mapping is an error at the second one (the YAML path shared
    with rule files), where a plain YAML load kept the last value silently."""
    path = _write(tmp_path, "smtp:\n  host: a\n  port: 25\n  host: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == (f"{path}:4:3: duplicate key 'host' (first defined at line 2)")


def test_file_values_keep_their_yaml_types(tmp_path: Path) -> None:
    """Numbers, booleans and lists of the file reach the models typed, as YAML wrote them."""
    path = _write(tmp_path, "smtp:\n  port: 2525\napi:\n  public_metrics: yes\n"
                            "rules: [a/, b/]\n")
    config = load_config(path, {})
    assert (config.smtp.port, config.api.public_metrics, config.rules) == (2525, True,
                                                                          ["a/", "b/"])
    path = _write(tmp_path, "smtp:\n  port: 70000\n")
    with pytest.raises(ConfigError, match=r"smtp\.port: must be <= 65535 \(got 70000\)"):
        load_config(path, {})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", {})


def test_cross_field_rules() -> None:
    """backoff_max_s >= backoff_initial_s, and SMTP user and password go together."""
    with pytest.raises(ConfigError, match=r"backoff_max_s must be >= dispatch\.backoff_initial_s"):
        load_config(None, {"TOCSIN_DISPATCH__BACKOFF_INITIAL_S": "10",
                           "TOCSIN_DISPATCH__BACKOFF_MAX_S": "1"})
    with pytest.raises(ConfigError, match="given together"):
        load_config(None, {"TOCSIN_SMTP__USERNAME": "u"})


def test_state_url_must_be_sqlite_or_postgresql() -> None:
    """An unsupported state URL is rejected with an example of a valid one of each kind."""
    with pytest.raises(ConfigError, match=r"sqlite:///var/tocsin\.db.*postgresql://"):
        load_config(None, {"TOCSIN_STATE_URL": "redis://x"})


@pytest.mark.parametrize("url", ["postgresql://tocsin@db:5432/tocsin",
                                 "postgres://tocsin@db/tocsin?sslmode=require"])
def test_state_url_takes_postgresql_from_the_environment(url: str) -> None:
    """TOCSIN_STATE_URL may name a PostgreSQL database, as the config file may."""
    assert load_config(None, {"TOCSIN_STATE_URL": url}).state_url == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9095", ("127.0.0.1", 9095)), ("[::1]:9095", ("::1", 9095)),
     ("localhost:1", ("localhost", 1))],
)
def test_parse_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    """host:port and [ipv6]:port are parsed into (host, port)."""
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9095", ":9095", "::1:9095", "host:0", "host:99999", "[::1]"])
def test_parse_listen_rejects(text: str) -> None:
    """Missing host, bare IPv6 without brackets and out-of-range ports are rejected."""
    with pytest.raises(ValueError):
        parse_listen(text)


def test_every_key_has_an_env_name() -> None:
    """Each leaf key maps to one TOCSIN_ name (documented list stays in sync)."""
    names = env_names()
    assert "TOCSIN_LISTEN" in names
    assert "TOCSIN_WEBHOOK__BASIC_AUTH__PASSWORD" in names
    assert "TOCSIN_DISPATCH__POLL_INTERVAL_S" in names
    assert len(names) == len(set(names))
    assert ServiceConfig.model_config.get("extra") == "forbid"


def test_retention_section_defaults_and_env() -> None:
    """Retention ages default to 7/90/90 days; TOCSIN_RETENTION__* overrides them and a
    negative age is rejected with the key named."""
    defaults = load_config(None, {}).retention
    assert (defaults.intake_days, defaults.deliveries_days, defaults.incidents_days) == (
        7, 90, 90)
    config = load_config(None, {"TOCSIN_RETENTION__INTAKE_DAYS": "0.5",
                                "TOCSIN_RETENTION__INCIDENTS_DAYS": "0"})
    assert config.retention.intake_days == 0.5 and config.retention.incidents_days == 0
    with pytest.raises(ConfigError, match=r"retention\.deliveries_days"):
        load_config(None, {"TOCSIN_RETENTION__DELIVERIES_DAYS": "-1"})


def test_api_tokens_from_file_and_env(tmp_path: Path) -> None:
    """api.tokens: inline, token_file and token_sha256 give the digest requests match."""
    secret = tmp_path / "reader.token"
    secret.write_text("file-token-0123456789\n")
    hashed = hashlib.sha256(b"hashed-token-0123456789").hexdigest()
    path = _write(tmp_path, f"""
api:
  tokens:
    - {{name: ci, token: inline-token-0123456789, scopes: [operate]}}
    - {{name: grafana, token_file: {secret}, scopes: [read]}}
    - {{name: root, token_sha256: {hashed}, scopes: [admin]}}
""")
    tokens = load_config(path, {}).api.tokens
    assert [t.digest() for t in tokens] == [
        hashlib.sha256(s).digest() for s in
        (b"inline-token-0123456789", b"file-token-0123456789", b"hashed-token-0123456789")]
    env = load_config(None, {"TOCSIN_API__TOKENS":
                             "[{name: a, token: env-token-0123456789, scopes: [read]}]"})
    assert env.api.tokens[0].scopes == ["read"]
    assert "env-token" not in repr(env)


@pytest.mark.parametrize(("token", "problem"), [
    ({"name": "a", "scopes": ["read"]}, "exactly one of token, token_file, token_sha256"),
    ({"name": "a", "token": "x" * 20, "token_sha256": "0" * 64, "scopes": ["read"]},
     "exactly one of"),
    ({"name": "a", "token": "short-secret", "scopes": ["read"]}, "at least 16 characters"),
    ({"name": "a", "token_sha256": "ABC", "scopes": ["read"]}, "64 lowercase hex"),
    ({"name": "a", "token_file": "/nonexistent/tok", "scopes": ["read"]},
     "cannot read token_file"),
    ({"name": "a", "token": "x" * 20, "scopes": []}, "at least 1 item"),
    ({"name": "a", "token": "x" * 20, "scopes": ["write"]}, "must be one of"),
])
def test_bad_api_tokens_are_rejected_without_echoing_secrets(
    token: dict[str, object], problem: str,
) -> None:
    """Each mistake in an api.tokens entry names the entry; the secret is never shown."""
    import yaml

    environ = {"TOCSIN_API__TOKENS": yaml.safe_dump([token], default_flow_style=True)}
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(None, environ)
    assert "short-secret" not in str(info.value)


def test_api_token_names_are_unique() -> None:
    """Two tokens with one name are rejected (403s and logs name them)."""
    with pytest.raises(ConfigError, match="unique: a repeated"):
        load_config(None, {"TOCSIN_API__TOKENS": "[{name: a, token: aaaaaaaaaaaaaaaaaa, "
                           "scopes: [read]}, {name: a, token: bbbbbbbbbbbbbbbbbb, "
                           "scopes: [read]}]"})
