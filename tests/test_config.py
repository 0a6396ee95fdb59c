"""Settings: precedence of file, environment and flags, and one clear line per bad value."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from hubbub.core.limits import Limits
from hubbub.core.urls import masked_url
from hubbub.server.settings import (
    ConfigError,
    Settings,
    add_arguments,
    describe,
    from_code,
    load,
)


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_need_no_external_service() -> None:
    settings = load(flags(), environ={})
    assert settings == Settings()
    assert settings.store == "sqlite" and settings.host == "127.0.0.1" and settings.port == 8080


def test_flags_override_environment_override_file(tmp_path: Path) -> None:
    config = tmp_path / "hubbub.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nstore = "memory"\nallowed_origins = '
                      '["https://chat.example"]\nmax-rooms = 7\n')
    settings = load(flags("--config", str(config), "--port", "9003"),
                    environ={"HUBBUB_PORT": "9002", "HUBBUB_STORE": "sqlite"})
    assert settings.port == 9003
    assert settings.store == "sqlite"
    assert settings.host == "0.0.0.0"
    assert settings.allowed_origins == ("https://chat.example",)
    assert settings.max_rooms == 7


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("heartbeat = 5\n")
    assert load(flags(), environ={"HUBBUB_CONFIG": str(config)}).heartbeat == 5.0


def test_lists_and_switches_from_the_environment() -> None:
    settings = load(flags(), environ={
        "HUBBUB_ALLOWED_ORIGINS": "https://a.example, http://b.example:8000/",
        "HUBBUB_DEV": "yes", "HUBBUB_RETENTION_MAX_COUNT": "0"})
    assert settings.allowed_origins == ("https://a.example", "http://b.example:8000")
    assert settings.dev is True
    assert settings.retention_max_count is None


@pytest.mark.parametrize(
    ("argv", "environ", "needle"),
    [
        (["--port", "abc"], {}, "port must be an integer (got 'abc' from --port)"),
        (["--port", "70000"], {}, "port must be from 0 to 65535"),
        ([], {"HUBBUB_PORT": "-1"}, "from HUBBUB_PORT"),
        (["--store", "postgres"], {}, "store must be one of sqlite, memory"),
        (["--rate-per-second", "-5"], {}, "rate_per_second must be a number from 0"),
        (["--rate-per-second", "nan"], {}, "rate_per_second must be a number"),
        (["--max-text-bytes", "0"], {}, "max_text_bytes must be from 1"),
        (["--max-text-bytes", "100000"], {}, "must not exceed max_frame_bytes"),
        (["--allowed-origin", "evil.example"], {}, "is not an origin"),
        (["--allowed-origin", "https://a.example/path"], {}, "is not an origin"),
        (["--api-key", "short"], {}, "api_key must be at least 8 characters"),
        (["--api-key", "bad\nkey-123"], {}, "control characters"),
        ([], {"HUBBUB_DEV": "maybe"}, "dev must be true or false"),
        (["--fanout", "magic"], {}, "fanout must be one of auto, sequential"),
        (["--plain-history", "500"], {}, "plain_history (500) must not exceed"),
        (["--log-format", "xml"], {}, "log_format must be one of text, json"),
        ([], {"HUBBUB_LOOP_STALL_WARNING_MS": "soon"}, "loop_stall_warning_ms must be a number"),
        (["--allowed-host", "http://a.example"], {}, "is not a host name"),
        ([], {"HUBBUB_ALLOWED_HOSTS": "ok.example,bad host"}, "'bad host' is not a host name"),
        (["--header-timeout", "0"], {}, "header_timeout must be a number from 0.1"),
        (["--ping-rate-burst", "0"], {}, "ping_rate_burst must be from 1"),
        (["--redis", "http://h:6379"], {}, "redis must be a URL like redis://HOST:PORT/DB"),
        (["--redis", "127.0.0.1:6379"], {}, "redis must be a URL like"),
        (["--redis", "redis://"], {}, "redis needs a host name"),
        (["--redis", "redis://h:99999/0"], {}, "redis has no valid port"),
        (["--redis", "redis://h:0/0"], {}, "redis must have a port from 1 to 65535"),
        (["--redis", "redis://h/zero"], {}, "redis may end only in a database number"),
        (["--redis", "redis://h/0?socket_timeout=5"], {}, "must not have ?parameters"),
        (["--redis", "redis://h/0#x"], {}, "must not have a #fragment"),
        (["--redis", "unix://redis.sock"], {}, "must name the socket's absolute path"),
        (["--redis", "unix:///run/"], {}, "must name the socket's absolute path"),
        (["--redis", "unix:///run/r.sock?db=one"], {}, "db= that is not a database number"),
        (["--redis", "unix:///run/r.sock?timeout=1"], {}, "takes only db= and password="),
        ([], {"HUBBUB_REDIS": "redis://bad host/0"}, "from HUBBUB_REDIS"),
        (["--redis-prefix", ""], {}, "redis_prefix must be 1-64 characters"),
        (["--redis-prefix", "a/b"], {}, "redis_prefix must be 1-64 characters"),
        (["--redis-prefix", "p" * 65], {}, "redis_prefix must be 1-64 characters"),
        (["--redis-timeout", "0.01"], {}, "redis_timeout must be a number from 0.05 to 60"),
        (["--redis-timeout", "61"], {}, "redis_timeout must be a number from 0.05 to 60"),
        (["--redis-timeout", "soon"], {}, "redis_timeout must be a number"),
        (["--presence-ttl", "0"], {}, "presence_ttl must be a number from 1 to 3600"),
        ([], {"HUBBUB_PRESENCE_TTL": "forever"}, "presence_ttl must be a number"),
        (["--workers", "0"], {}, "workers must be from 1 to 1024, or auto (got '0'"),
        (["--workers", "-1"], {}, "workers must be from 1 to 1024, or auto"),
        (["--workers", "abc"], {}, "workers must be an integer, or auto (got 'abc'"),
        (["--workers", "1.5"], {}, "workers must be an integer, or auto"),
        (["--workers", "5000"], {}, "workers must be from 1 to 1024"),
        ([], {"HUBBUB_WORKERS": "many"}, "from HUBBUB_WORKERS"),
        (["--workers", "2"], {}, "--workers 2 needs --redis URL: workers share rooms"),
        ([], {"HUBBUB_WORKERS": "3"}, "--workers 3 needs --redis URL"),
    ],
)
def test_bad_values_are_named_with_their_source(argv: list[str], environ: dict[str, str],
                                                needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(flags(*argv), environ=environ)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("port = ", "is not valid TOML"),
        ("colour = 'blue'", "unknown setting 'colour'"),
        ("port = 'eighty'", "port must be an integer"),
        ("port = 80.5", "port must be an integer"),
        ("dev = 'sometimes'", "dev must be true or false"),
        ("allowed_origins = 5", "must be a list of origins"),
        ("\x00\xff", "cannot be read"),
        ("redis = 6379", "redis must be a string"),
        ("workers = 2.5", "workers must be an integer, or auto"),
        ("workers = true", "workers must be an integer, or auto"),
        ("workers = 2", "--workers 2 needs --redis"),
        ("redis_prefix = ''", "redis_prefix must be 1-64 characters"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load(flags("--config", str(config)), environ={})
    assert needle in str(info.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(flags("--config", str(tmp_path / "nope.toml")), environ={})


def test_operations_doc_lists_every_setting() -> None:
    from hubbub.server.settings import OPTIONS

    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    for option in OPTIONS:
        assert f"| `{option.name}` |" in doc, f"{option.name} missing from docs/operations.md"
        assert f"`HUBBUB_{option.name.upper()}`" in doc


def test_log_format_and_loop_stall_warning() -> None:
    assert (Settings().log_format, Settings().loop_stall_warning_ms) == ("text", 250.0)
    settings = load(flags("--log-format", "JSON", "--loop-stall-warning-ms", "0"), environ={})
    assert (settings.log_format, settings.loop_stall_warning_ms) == ("json", 0.0)


def test_redis_and_workers_from_file_environment_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "hubbub.toml"
    config.write_text('redis = "unix:///run/redis/redis.sock?db=2"\nredis-prefix = "chat:eu"\n'
                      'redis_timeout = 0.5\nworkers = "auto"\n')
    from_file = load(flags("--config", str(config)), environ={})
    assert from_file.redis == "unix:///run/redis/redis.sock?db=2"
    assert (from_file.redis_prefix, from_file.redis_timeout) == ("chat:eu", 0.5)
    assert from_file.workers == len(os.sched_getaffinity(0))
    environ = {"HUBBUB_REDIS": "rediss://redis.example:6380/1", "HUBBUB_WORKERS": "3",
               "HUBBUB_REDIS_PREFIX": "env", "HUBBUB_REDIS_TIMEOUT": "10"}
    from_env = load(flags("--config", str(config)), environ=environ)
    assert (from_env.redis, from_env.workers) == ("rediss://redis.example:6380/1", 3)
    assert (from_env.redis_prefix, from_env.redis_timeout) == ("env", 10.0)
    from_flags = load(flags("--config", str(config), "--redis", "redis://[::1]/0",
                            "--workers", "AUTO", "--redis-timeout", "0.05"), environ=environ)
    assert from_flags.redis == "redis://[::1]/0"
    assert from_flags.workers == len(os.sched_getaffinity(0))
    assert from_flags.redis_timeout == 0.05


def test_redis_defaults_and_one_worker_need_no_redis() -> None:
    settings = load(flags("--workers", "1"), environ={"HUBBUB_REDIS": ""})
    assert (settings.redis, settings.redis_prefix, settings.redis_timeout) == (
        None, "hubbub", 2.0)
    assert settings.workers == 1


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:hunter2-secret@redis.example:6379/0", "redis://:***@redis.example:6379/0"),
    ("redis://app:hunter2-secret@redis.example/0", "redis://app:***@redis.example/0"),
    ("rediss://hunter2-secret@redis.example", "rediss://***@redis.example"),
    ("unix:///run/r.sock?db=1&password=hunter2-secret", "unix:///run/r.sock?db=1&password=***"),
    ("redis://redis.example:6379/0", "redis://redis.example:6379/0"),
    ("unix:///run/a@b.sock", "unix:///run/a@b.sock"),
])
def test_a_redis_password_is_masked_in_the_start_up_description(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    settings = from_code(redis=url)
    assert settings.redis == url  # the broker gets the real one
    assert describe(settings)["redis"] == shown
    assert "hunter2" not in str(describe(settings))


@pytest.mark.parametrize("url", [
    "redis://:hunter2-secret@redis.example:port/0",  # not a URL redis-py could read
    "redis://user:hunter2/secret@redis.example/0",  # an unescaped / in the password
    "redis://:hunter2-secret@redis.example/0?timeout=1",
    "unix:///run/r.sock?password=hunter2-secret&timeout=1",
])
def test_a_redis_password_is_never_in_an_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(flags("--redis", url), environ={})
    assert "redis" in str(info.value) and "***" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_secrets_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load(flags("--api-key", "short"), environ={})
    assert "short" not in str(info.value) and "'***'" in str(info.value)


def test_limits_are_built_once_from_the_limit_settings() -> None:
    settings = load(flags("--max-rooms", "7", "--rate-burst", "9"), environ={})
    assert settings.limits is settings.limits
    assert settings.limits == Limits(max_rooms=7, rate_burst=9)
    assert Settings().limits == Limits()
    assert settings.max_rooms == 7  # read as a setting too, under the same name
    assert "limits" not in describe(settings)
