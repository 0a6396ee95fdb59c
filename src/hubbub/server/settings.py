"""Server settings: one table drives defaults, the TOML file, `HUBBUB_*` variables and flags.

Precedence, lowest first: defaults, `--config FILE`, environment, command-line flags.
Every value is checked before anything starts; a bad one raises `ConfigError` naming the
setting, the value and where it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubbub.core.limits import Limits
from hubbub.core.urls import masked_url

_DEFAULT_LIMITS = Limits()
LIMIT_NAMES = tuple(item.name for item in dataclasses.fields(Limits))
"""The settings that are `Limits` fields, under the same names: `Limits` owns their defaults
and meaning, `Settings.limits` carries them to the core."""
FANOUT_STRATEGIES = ("auto", "sequential", "concurrent", "queued")
ENV_PREFIX = "HUBBUB_"


class ConfigError(ValueError):
    """A setting has a value hubbub cannot use; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("hubbub-data")
    dev: bool = False
    log_level: str = "info"
    store: str = "sqlite"
    durability: str = "fsync"
    commit_window_ms: float = 2.0
    retention_max_count: int | None = None
    retention_max_age: float | None = None
    api_key: str | None = None
    jwt_secret: str | None = None
    allowed_origins: tuple[str, ...] = ()
    max_frame_bytes: int = _DEFAULT_LIMITS.max_frame_bytes
    max_text_bytes: int = _DEFAULT_LIMITS.max_text_bytes
    max_rooms: int = _DEFAULT_LIMITS.max_rooms
    history_page_max: int = _DEFAULT_LIMITS.history_page_max
    rate_per_second: float = _DEFAULT_LIMITS.rate_per_second
    rate_burst: int = _DEFAULT_LIMITS.rate_burst
    heartbeat: float = 30.0
    plain_history: int = 10
    outbox_max_bytes: int = 1024 * 1024
    fanout: str = "auto"
    compression: bool = False
    shutdown_timeout: float = 5.0
    log_format: str = "text"
    loop_stall_warning_ms: float = 250.0
    allowed_hosts: tuple[str, ...] = ()
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int | None = 50_000
    max_connections_per_ip: int | None = 1_000
    connection_rate_per_second: float = 50.0
    connection_rate_burst: int = 1_000
    ping_rate_per_second: float = 10.0
    ping_rate_burst: int = 50
    http_rate_per_second: float = 1_000.0
    http_rate_burst: int = 2_000
    max_total_rooms: int | None = 100_000
    jwt_public_key_file: Path | None = None
    require_token: bool = False
    redis: str | None = None
    redis_prefix: str = "hubbub"
    redis_timeout: float = 2.0
    workers: int = 1
    presence_ttl: float = 30.0
    limits: Limits = dataclasses.field(init=False, repr=False, compare=False)
    """The `LIMIT_NAMES` settings as the core takes them; built once, with the settings."""

    def __post_init__(self) -> None:
        limits = Limits(**{name: getattr(self, name) for name in LIMIT_NAMES})
        object.__setattr__(self, "limits", limits)  # frozen: the one write, at construction


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    help: str
    parse: Callable[[Any], Any]
    metavar: str | None = None
    flag_action: str | None = None  # "store_true" or "append"
    shown: Callable[[Any], Any] | None = None
    """How error messages and the start-up log show a value: secrets masked."""

    @property
    def flag(self) -> str:
        return _SINGULAR_FLAGS.get(self.name) or "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError("must be an integer") from None
        if isinstance(value, float) and value != number:
            raise ValueError("must be an integer")
        if number < low or (high is not None and number > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return number

    return parse


def _float(low: float, high: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if number != number or number < low or (high is not None and number > high):
            bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"must be a number {bound}")
        return number

    return parse


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        if value is None or value == "" or value == 0 or value == "0":
            return None
        return parse(value)

    return wrapped


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value.lower()

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _text(max_chars: int = 4096) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if not value.strip() or len(value) > max_chars:
            raise ValueError(f"must be 1-{max_chars} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("must not contain control characters")
        return value

    return parse


def _secret(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = _text(1024)(value)
    if len(text) < 8:
        raise ValueError("must be at least 8 characters")
    return text


def _path(value: Any) -> Path:
    return Path(_text()(value))


def _list_of(what: str, clean: Callable[[str], str],
             valid: Callable[[str], bool], example: str) -> Callable[[Any], tuple[str, ...]]:
    """A list setting (a TOML list, or comma-separated text from a flag or variable): each
    item cleaned, empty ones dropped, `*` or a `valid` one kept, anything else refused."""

    def parse(value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"must be a list of {what}")
        kept = []
        for item in map(clean, items):
            if not item:
                continue
            if item != "*" and not valid(item):
                raise ValueError(f"{item!r} is not {example}")
            kept.append(item)
        return tuple(kept)

    return parse


_HOST_NAME = re.compile(r"\.?[a-z0-9_]([a-z0-9_.-]{0,252})|\[[0-9a-f:.]+\]")


def _is_origin(item: str) -> bool:
    return item.startswith(("http://", "https://")) and "/" not in item.split("://", 1)[1]


_origins = _list_of("origins", lambda item: item.strip().rstrip("/").lower(), _is_origin,
                    "an origin like https://example.com or *")
_hosts = _list_of("host names", lambda item: item.strip().lower().rstrip("."),
                  lambda item: _HOST_NAME.fullmatch(item) is not None,
                  "a host name like chat.example.com, .example.com (it and its subdomains),"
                  " [::1] or *")


def _hidden(value: Any) -> str:
    return "***"


REDIS_URL_FORMS = "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH"
_REDIS_HOST = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,252})|[0-9a-f:.]+")
_REDIS_DB = re.compile(r"/?|/[0-9]{1,5}")


def _redis_url(value: Any) -> str | None:
    """`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, the same with `rediss://` (TLS), or
    `unix://[[USER]:PASSWORD@]/PATH[?db=DB]`, as redis-py reads them. Only the shape is
    checked here: whether Redis answers there is the broker's business."""
    if value is None or value == "":
        return None
    text = _text(2048)(value)
    scheme, separator, _ = text.partition("://")
    if not separator or scheme.lower() not in ("redis", "rediss", "unix"):
        raise ValueError(f"must be a URL like {REDIS_URL_FORMS}")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"has no valid port: it must look like {REDIS_URL_FORMS}") from None
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if parts.scheme == "unix":
        host = parts.netloc.rpartition("@")[2]
        if host or not parts.path.startswith("/") or parts.path.endswith("/"):
            raise ValueError("must name the socket's absolute path, like unix:///run/redis.sock")
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if set(query) - {"db", "password"}:
            raise ValueError("takes only db= and password= parameters after its path")
        if any(_REDIS_DB.fullmatch("/" + item) is None for item in query.get("db", [])):
            raise ValueError("has a db= that is not a database number")
        return text
    if not parts.hostname or _REDIS_HOST.fullmatch(parts.hostname) is None:
        raise ValueError(f"needs a host name or address: it must look like {REDIS_URL_FORMS}")
    if port == 0:
        raise ValueError("must have a port from 1 to 65535")
    if _REDIS_DB.fullmatch(parts.path) is None:
        raise ValueError("may end only in a database number, like /0")
    if parts.query:
        raise ValueError("must not have ?parameters (its timeout is redis_timeout)")
    return text


_REDIS_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _redis_prefix(value: Any) -> str:
    if not isinstance(value, str) or _REDIS_PREFIX.fullmatch(value) is None:
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


MAX_WORKERS = 1024
"""A typo such as `--workers 2000` must not start two thousand processes."""


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask, which a container's cpuset or
    `taskset` narrows), not every CPU of the machine: what `--workers auto` starts."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity masks
        return os.cpu_count() or 1


def _workers(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return cpus_available()
    try:
        return _int(1, MAX_WORKERS)(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, or auto") from None



OPTIONS: tuple[Option, ...] = (
    Option("host", "interface to listen on", _text(255), "HOST"),
    Option("port", "TCP port (0 picks a free one)", _int(0, 65535), "PORT"),
    Option("data_dir", "directory for the SQLite database", _path, "DIR"),
    Option("dev", "asyncio debug mode and verbose logs", _bool, flag_action="store_true"),
    Option("log_level", "debug, info, warning or error",
           _choice("debug", "info", "warning", "error"), "LEVEL"),
    Option("store", "message store: sqlite (durable) or memory", _choice("sqlite", "memory"),
           "KIND"),
    Option("durability", "fsync every commit, or batch commits (see docs/operations.md)",
           _choice("fsync", "batch"), "MODE"),
    Option("commit_window_ms", "longest wait to group writes into one commit",
           _float(0, 1000), "MS"),
    Option("retention_max_count", "messages kept per room (0 = no limit)",
           _optional(_int(1)), "N"),
    Option("retention_max_age", "seconds a message is kept (0 = no limit)",
           _optional(_float(1)), "SECONDS"),
    Option("api_key", "Bearer key required by the HTTP API", _secret, "KEY", shown=_hidden),
    Option("jwt_secret", "HS256 secret; when set, /ws needs ?token=JWT", _secret, "SECRET",
           shown=_hidden),
    Option("allowed_origins", "extra browser origin allowed to open /ws (repeatable; * = any)",
           _origins, "ORIGIN", flag_action="append"),
    Option("max_frame_bytes", "largest WebSocket frame (bigger closes with 1009)",
           _int(256, 16 * 1024 * 1024), "BYTES"),
    Option("max_text_bytes", "largest message text", _int(1, 16 * 1024 * 1024), "BYTES"),
    Option("max_rooms", "rooms one connection may join", _int(1, 100_000), "N"),
    Option("history_page_max", "largest history page", _int(1, 10_000), "N"),
    Option("rate_per_second", "requests per second per connection (0 = no limit)",
           _float(0, 1_000_000), "N"),
    Option("rate_burst", "burst above the rate", _int(1, 1_000_000), "N"),
    Option("heartbeat", "WebSocket ping interval in seconds (0 = off)", _float(0, 3600),
           "SECONDS"),
    Option("plain_history", "lobby messages sent to a plain-text client on connect",
           _int(0, 10_000), "N"),
    Option("outbox_max_bytes", "bytes queued for one slow client before it is closed (4008)",
           _int(1024, 1024**3), "BYTES"),
    Option("fanout", "fan-out strategy", _choice(*FANOUT_STRATEGIES), "STRATEGY"),
    Option("compression", "offer permessage-deflate", _bool, flag_action="store_true"),
    Option("shutdown_timeout", "seconds to finish work on SIGTERM", _float(0, 300), "SECONDS"),
    Option("log_format", "text, or json: one JSON object per line for log shippers",
           _choice("text", "json"), "FORMAT"),
    Option("loop_stall_warning_ms", "log a warning when the event loop stalls this long "
           "(0 = never)", _float(0, 600_000), "MS"),
    Option("jwt_public_key_file", "PEM public key verifying RS256/ES256 tokens; when set, "
           "/ws needs ?token=JWT", _optional(_path), "FILE"),
    Option("require_token", "/ws needs ?token= (a JWT, or the API key) even without a JWT key",
           _bool, flag_action="store_true"),
    Option("allowed_hosts", "Host name browsers may reach the server by (repeatable; * = any; "
           "default: loopback names when listening on loopback, else any)",
           _hosts, "HOST", flag_action="append"),
    Option("header_timeout", "seconds a new connection has to send its request headers "
           "(an API request: its body too)", _float(0.1, 3600), "SECONDS"),
    Option("keepalive_timeout", "seconds an idle HTTP connection is kept open between requests",
           _float(0.1, 3600), "SECONDS"),
    Option("max_connections", "open connections in total (0 = no limit; lowered to fit the "
           "open-file limit)", _optional(_int(1)), "N"),
    Option("max_connections_per_ip", "open connections per client address (IPv6: per /64; "
           "0 = no limit)", _optional(_int(1)), "N"),
    Option("connection_rate_per_second", "new connections per second per client address "
           "(0 = no limit)", _float(0, 1_000_000), "N"),
    Option("connection_rate_burst", "burst of new connections above the rate",
           _int(1, 1_000_000), "N"),
    Option("ping_rate_per_second", "WebSocket pings per second per connection before it is "
           "closed with 4029 (0 = no limit)", _float(0, 1_000_000), "N"),
    Option("ping_rate_burst", "burst of pings above the rate", _int(1, 1_000_000), "N"),
    Option("http_rate_per_second", "HTTP API requests per second per client address "
           "(0 = no limit)", _float(0, 1_000_000), "N"),
    Option("http_rate_burst", "burst of HTTP API requests above the rate",
           _int(1, 1_000_000), "N"),
    Option("max_total_rooms", "rooms the server holds, with or without messages, before it "
           "refuses to start another (0 = no limit)", _optional(_int(1)), "N"),
    Option("redis", f"Redis server the workers and nodes share rooms through: {REDIS_URL_FORMS}",
           _redis_url, "URL", shown=masked_url),
    Option("redis_prefix", "prefix of every Redis key hubbub writes (1-64 of A-Z a-z 0-9 _ . : -)",
           _redis_prefix, "PREFIX"),
    Option("redis_timeout", "seconds a Redis command may take before it counts as failed",
           _float(0.05, 60), "SECONDS"),
    Option("workers", "worker processes serving one port (auto = one per CPU this process may "
           "use); above 1 needs --redis", _workers, "N"),
    Option("presence_ttl", "seconds a member of a node that stopped answering stays listed "
           "(with --redis)", _float(1, 3600), "SECONDS"),
)
_BY_NAME = {option.name: option for option in OPTIONS}
_SINGULAR_FLAGS = {"allowed_origins": "--allowed-origin", "allowed_hosts": "--allowed-host"}


UNITS = {"BYTES": "bytes", "SECONDS": "s", "MS": "ms"}
"""The unit of a setting, from its metavar in the table."""

SETTINGS_EPILOG = (
    "Every setting can also be given in the TOML file of --config (its key is the flag "
    "without the leading --) or in its HUBBUB_* variable: flags win over the environment, "
    "the environment over the file, the file over the defaults. See docs/operations.md."
)


def setting(name: str) -> Option:
    """The table's row of a setting (for commands whose flags mirror one)."""
    return _BY_NAME[name]


def default_of(name: str) -> Any:
    """The built-in default of a setting, as `Settings` defines it."""
    for item in _given_fields():
        if item.name == name:
            return item.default
    raise KeyError(name)


def show_default(option: Option) -> str:
    """A setting's default as help text shows it: with its unit, `none` when unset."""
    value = default_of(option.name)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        value = f"{value:g}"
    unit = UNITS.get(option.metavar or "")
    if unit is None:
        return str(value)
    shown = f"{value} {unit}"
    if unit == "bytes" and isinstance(value, int):
        for size, name in ((1024**2, "MiB"), (1024, "KiB")):
            if value >= size and value % size == 0:
                return f"{shown} ({value // size} {name})"
    return shown


def option_help(option: Option) -> str:
    """The help line of a setting's flag: what it does, its default and its variable."""
    text = f"{option.help} [default: {show_default(option)}; env {option.env}]"
    return text.replace("%", "%%")  # argparse formats help with %


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"TOML settings file [env {ENV_PREFIX}CONFIG]")
    if parser.epilog is None:
        parser.epilog = SETTINGS_EPILOG
    for option in OPTIONS:
        if option.flag_action == "store_true":
            parser.add_argument(option.flag, dest=option.name, action="store_true",
                                default=None, help=option_help(option))
        else:
            parser.add_argument(option.flag, dest=option.name,
                                action=option.flag_action or "store", metavar=option.metavar,
                                default=None, help=option_help(option))


def _check(option: Option, value: Any, source: str) -> Any:
    try:
        return option.parse(value)
    except ValueError as exc:
        shown = option.shown(value) if option.shown else value
        raise ConfigError(f"{option.name} {exc} (got {shown!r} from {source})") from None


def load(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Build settings from a config file, the environment and parsed flags."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (getattr(args, "config", None) if args else None)
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_from_file(Path(path)))
    for option in OPTIONS:
        if option.env in environ:
            values[option.name] = _check(option, environ[option.env], option.env)
    if args is not None:
        for option in OPTIONS:
            raw = getattr(args, option.name, None)
            if raw is None:
                continue
            values[option.name] = _check(option, raw, option.flag)
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _from_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        option = _BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        values[name] = _check(option, value, str(path))
    return values


def _check_consistency(settings: Settings) -> None:
    if settings.max_text_bytes > settings.max_frame_bytes:
        raise ConfigError(
            f"max_text_bytes ({settings.max_text_bytes}) must not exceed "
            f"max_frame_bytes ({settings.max_frame_bytes})"
        )
    if settings.require_token and not (settings.jwt_secret or settings.jwt_public_key_file
                                       or settings.api_key):
        raise ConfigError("require_token needs jwt_secret, jwt_public_key_file or api_key "
                          "to check tokens with")
    if settings.plain_history > settings.history_page_max:
        raise ConfigError(
            f"plain_history ({settings.plain_history}) must not exceed "
            f"history_page_max ({settings.history_page_max})"
        )
    if settings.workers > 1 and settings.redis is None:
        # Named by its flag, the way an operator meets it (the wording).
        raise ConfigError(f"--workers {settings.workers} needs --redis URL: workers share "
                          "rooms through Redis")


def _given_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields a caller gives (every setting), without those derived from them."""
    return tuple(item for item in dataclasses.fields(Settings) if item.init)


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as plain values, secrets masked, for the start-up log."""
    shown = {}
    for item in _given_fields():
        value = getattr(settings, item.name)
        mask = _BY_NAME[item.name].shown
        if mask is not None and value:
            value = mask(value)
        shown[item.name] = str(value) if isinstance(value, Path) else value
    return shown


def from_code(**values: Any) -> Settings:
    """Settings given in code (`hubbub.setup`, `hubbub.asgi.create_app`), checked exactly as
    `hubbub serve` checks its flags and config file; `ConfigError` says which is wrong."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        option = _BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"unknown setting {name!r}")
        # A `Path` is what `data_dir` holds once parsed; the parser reads its text.
        raw = str(value) if isinstance(value, Path) else value
        checked[name] = _check(option, raw, f"{name}=")
    settings = Settings(**checked)
    _check_consistency(settings)
    return settings


def validate(settings: Settings) -> Settings:
    """`settings` built by hand (`Settings(...)`) checked as `from_code` checks them."""
    defaults = Settings()
    given = {item.name: getattr(settings, item.name) for item in _given_fields()
             if getattr(settings, item.name) != getattr(defaults, item.name)}
    return from_code(**given)
