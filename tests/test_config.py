"""Settings: precedence of file, environment and flags, and one clear line per bad value."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hubbub.server.settings import ConfigError, Settings, add_arguments, load


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
