"""
FasterStore's settings: one typed, frozen L{Settings} object, and the rules
that build it from the command line, C{FASTERSTORE_*} environment variables
and a TOML config file.

Every option exists once, in L{OPTIONS}; the command line, the environment
and the config file are the same options in other clothes.  Precedence:
command line > environment > config file > default.
Tests: tests/unit/test_config.py.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from typing import Any, Callable, Dict, Literal, Mapping, Optional, Sequence, Tuple

import attrs
from twisted.internet.endpoints import serverFromString
from twisted.python.filepath import FilePath

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_LISTEN = "tcp:9000:interface=127.0.0.1"
#: Free bytes object data may not use (see the C{reserve} option).
DEFAULT_RESERVE = 512 * MiB
#: Dead fraction at which a sealed segment is compacted.
DEFAULT_COMPACTION_THRESHOLD = 0.25
#: Bytes per second compaction may copy.
DEFAULT_COMPACTION_RATE = 64 * MiB
#: Seconds between two compaction passes.
DEFAULT_COMPACTION_INTERVAL = 60.0
#: Seconds between two lifecycle passes (from the end of one to the start of the next).
DEFAULT_LIFECYCLE_INTERVAL = 3600.0
ENV_PREFIX = "FASTERSTORE_"
#: The values of C{--http-parser} (their channels: L{fasterstore.service.CHANNELS}).
HTTP_PARSERS = ("twisted", "httptools")


class ConfigError(ValueError):
    """A setting is missing, malformed or inconsistent; the text says which."""


# -- value parsers -----------------------------------------------------------

_SIZE_UNITS: Dict[str, int] = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kib": KiB,
    "m": MiB,
    "mib": MiB,
    "g": GiB,
    "gib": GiB,
    "t": 1024 * GiB,
    "tib": 1024 * GiB,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_UNITS: Dict[str, float] = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parseSize(value: object) -> int:
    """
    A byte count: an integer, or a string such as C{"256MiB"}, C{"5G"} or
    C{"4096"}.  K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024 (the way disks
    and segment sizes are usually thought of); KB/MB/GB/TB are powers of 1000.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size in bytes, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is not None:
            number, unit = match.groups()
            multiplier = _SIZE_UNITS.get(unit.lower())
            if multiplier is not None:
                return int(float(number) * multiplier) if "." in number else int(number) * multiplier
    raise ValueError(f"expected a size such as 4096, 256MiB or 5GiB, not {value!r}")


def parseDuration(value: object) -> float:
    """Seconds: a number, or a string such as C{"30"}, C{"2.5s"}, C{"5m"}, C{"1h"}, C{"7d"}."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is not None:
            number, unit = match.groups()
            return float(number) * _DURATION_UNITS[unit]
    raise ValueError(f"expected a number of seconds such as 30, 2.5s, 5m or 7d, not {value!r}")


def parseCount(value: object) -> int:
    """A whole number, given as an integer or its decimal text."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"expected a whole number, not {value!r}")


def parseFraction(value: object) -> float:
    """A number such as C{0.25}, given as a TOML float or its decimal text (range checked by L{Settings})."""
    if isinstance(value, bool):
        raise ValueError(f"expected a fraction such as 0.25, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a fraction such as 0.25, not {value!r}")


def parseFlag(value: object) -> bool:
    """A boolean: TOML C{true}/C{false}, 1/0, or 1/0, true/false, yes/no, on/off as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"expected true or false, not {value!r}")


def parseText(value: object) -> str:
    """A string, as given."""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, not {value!r}")


def parseList(value: object) -> Tuple[str, ...]:
    """
    A list of strings.  A TOML array, or (environment, single TOML string)
    a comma-separated string: endpoint strings never contain commas.
    """
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, not {value!r}")


# -- the option table --------------------------------------------------------

Kind = Literal["text", "path", "size", "duration", "count", "fraction", "flag", "list", "paths"]

_PARSERS: Dict[str, Callable[[object], Any]] = {
    "text": parseText,
    "path": parseText,
    "size": parseSize,
    "duration": parseDuration,
    "count": parseCount,
    "fraction": parseFraction,
    "flag": parseFlag,
    "list": parseList,
    "paths": parseList,
}


@attrs.frozen
class OptionSpec:
    """
    One option, in all its clothes.

    @ivar name: the long option (C{--name}) and the config-file key.
    @ivar field: the L{Settings} attribute it fills.
    @ivar kind: how its text is parsed; C{"list"}/C{"paths"} are repeatable.
    @ivar help: one line for C{--help}.
    @ivar short: a one-letter option, if any.
    """

    name: str
    field: str
    kind: Kind
    help: str
    short: Optional[str] = None

    @property
    def envVar(self) -> str:
        """C{FASTERSTORE_<NAME_IN_UPPER_SNAKE>}."""
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def repeatable(self) -> bool:
        """Whether the option may be given more than once (and is a list)."""
        return self.kind in ("list", "paths")

    def parse(self, value: object) -> Any:
        """Turn a raw value (text or TOML) into this option's type."""
        return _PARSERS[self.kind](value)


OPTIONS: Tuple[OptionSpec, ...] = (
    OptionSpec(
        "listen", "listen", "list",
        f"Endpoint string to serve S3 on; repeatable. [default: {DEFAULT_LISTEN}]", "l",
    ),
    OptionSpec("data-dir", "dataDir", "path", "Directory holding segments, metadata and credentials. [default: ./data]", "d"),
    OptionSpec("region", "region", "text", "Region name reported to clients and required in signatures. [default: us-east-1]"),
    OptionSpec("access-key", "accessKey", "text", "Access key id (with --secret-key); generated on first start if absent."),
    OptionSpec("secret-key", "secretKey", "text", "Secret access key (with --access-key)."),
    OptionSpec(
        "credentials", "credentialsFile", "path",
        "TOML file of accounts and their key pairs; re-read on SIGHUP. [default: none]",
    ),
    OptionSpec("domain", "domains", "list", "Base domain for virtual-hosted-style bucket addressing; repeatable."),
    OptionSpec("config", "configFile", "path", "TOML file with the same options (keys are the long option names)."),
    OptionSpec("no-fsync", "noFsync", "flag", "Never fsync: acknowledged writes may be lost. Unsafe, benchmarks only."),
    OptionSpec("segment-size", "segmentSize", "size", "Target segment file size before rotation, in bytes. [default: 256MiB]"),
    OptionSpec("snapshot-interval", "snapshotInterval", "duration", "Ignored: the metadata store takes no snapshots any more (accepted so that old configurations still start)."),
    OptionSpec(
        "shutdown-timeout", "shutdownTimeout", "duration",
        "Seconds in-flight requests get to finish on SIGTERM. [default: 30]",
    ),
    OptionSpec("max-object-size", "maxObjectSize", "size", "Largest single PUT accepted, in bytes. [default: 5GiB]"),
    OptionSpec(
        "reserve", "reserve", "size",
        "Bytes of the drive that object data may not use: an upload that would leave less free is refused "
        "with 507 InsufficientStorage before its body is read, so that metadata commits, deletes and compaction "
        "keep working on a full disk. The default leaves room for compaction to copy the live data of one "
        "default-sized (256MiB) segment before it frees it, and as much again for the metadata and uploads "
        "already under way; keep it above --segment-size. 0: refuse only what does not fit. [default: 512MiB]",
    ),
    OptionSpec("drive", "drives", "paths", "Existing directory to store object data on; repeatable (one for now)."),
    OptionSpec("threads", "threads", "count", "Size of the disk thread pool. [default: 8]"),
    OptionSpec(
        "workers", "workers", "count",
        "Processes serving this node: they share the listening sockets and the data directory; "
        "0 means one per CPU. [default: 0]",
    ),
    OptionSpec(
        "compaction-threshold", "compactionThreshold", "fraction",
        "A sealed segment is compacted (its live data copied, its file deleted) once at least this fraction "
        "of its bytes is dead; between 0 and 1, exclusive. Lower reclaims space sooner for more copying. [default: 0.25]",
    ),
    OptionSpec(
        "compaction-rate", "compactionRate", "size",
        "Bytes per second compaction may copy, so that it never starves client requests of disk bandwidth. "
        "0: no compaction. [default: 64MiB]",
    ),
    OptionSpec(
        "compaction-interval", "compactionInterval", "duration",
        "Seconds between two compaction passes (one also runs at start). [default: 60]",
    ),
    OptionSpec(
        "lifecycle-interval", "lifecycleInterval", "duration",
        "Seconds from the end of one lifecycle pass (applying every bucket's lifecycle rules) to the start of "
        "the next. [default: 1 hour]",
    ),
    OptionSpec(
        "test-clock-offset-file", "testClockOffsetFile", "path",
        "TESTS ONLY: a file holding a number of seconds added to the clock of the background services "
        "(lifecycle rules, multipart upload expiry), re-read when it changes, so that tests can make days pass. "
        "Never set it in production. [default: none]",
    ),
    OptionSpec(
        "multipart-ttl", "multipartTTL", "duration",
        "Seconds an incomplete multipart upload is kept before its parts are reclaimed. [default: 7 days]",
    ),
    OptionSpec("access-log", "accessLog", "text", "Write a combined-format access log to this file ('-': the twistd log). [default: none]"),
    OptionSpec(
        "header-timeout", "headerTimeout", "duration",
        "Seconds a client gets to send a whole request head (from connecting, or from the request's first byte); "
        "then 400 RequestTimeout and the connection is closed. 0: no deadline. [default: 20]",
    ),
    OptionSpec(
        "min-upload-rate", "minUploadRate", "size",
        "Bytes per second a request body must average over each --upload-rate-window (time the server paused "
        "reading does not count); slower gets 400 RequestTimeout and the connection is closed. 0: no minimum. [default: 1KiB]",
    ),
    OptionSpec(
        "upload-rate-window", "uploadRateWindow", "duration",
        "Seconds over which --min-upload-rate is averaged. [default: 30]",
    ),
    OptionSpec(
        "max-connections", "maxConnections", "count",
        "Client connections served at once, over all listeners; past it a new connection is answered "
        "503 SlowDown (Retry-After: 1) and closed. 0: no limit. [default: 1024, or 3/4 of the open-file limit if lower]",
    ),
    OptionSpec(
        "http-parser", "httpParser", "text",
        "The HTTP/1.1 parser of client connections: 'twisted' (twisted.web's own) or 'httptools' (llhttp, "
        "the C parser of uvicorn: less CPU per request). The same limits apply to both. [default: twisted]",
    ),
)
OPTIONS_BY_NAME: Mapping[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}


# -- the settings ------------------------------------------------------------


def _positive(what: str) -> Callable[[Any, "attrs.Attribute[Any]", Any], None]:
    """An attrs validator: the value must be a number above zero."""

    def check(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ConfigError(f"{attribute.name} must be a positive {what}, not {value!r}")

    return check


def _nonNegative(instance: Any, attribute: "attrs.Attribute[Any]", value: float) -> None:
    """An attrs validator: a finite number of seconds, zero or more."""
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"{attribute.name} must be zero or more seconds, not {value!r}")


def _nonNegativeCount(instance: Any, attribute: "attrs.Attribute[Any]", value: int) -> None:
    """An attrs validator: a whole number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name} must be a whole number, zero or more, not {value!r}")


def _openFraction(instance: Any, attribute: "attrs.Attribute[Any]", value: float) -> None:
    """An attrs validator: a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{attribute.name} must be a fraction between 0 and 1 (exclusive), not {value!r}")


def _httpParser(instance: Any, attribute: "attrs.Attribute[Any]", value: str) -> None:
    """An attrs validator: one of L{HTTP_PARSERS}."""
    if value not in HTTP_PARSERS:
        raise ConfigError(f"{attribute.name} must be one of {', '.join(HTTP_PARSERS)}, not {value!r}")


def _defaultMaxConnections() -> int:
    """The connection bound's default (imported late: twisted.web is heavy for C{--help})."""
    from fasterstore.http.channel import defaultMaxConnections

    return defaultMaxConnections()


def _defaultDataDir() -> FilePath[str]:
    """C{./data}, resolved against the working directory at construction."""
    return FilePath(os.path.abspath("data"))


@attrs.frozen
class Settings:
    """
    Everything a FasterStore server is told at startup, already validated.

    Built by L{fasterstore.tap.Options} for C{twistd}, or directly by code
    embedding FasterStore (every field has the documented default).

    @ivar listen: server endpoint strings (C{tcp:}, C{ssl:}, C{systemd:},
        C{unix:}...), each already checked to parse.
    @ivar dataDir: absolute path of the data directory (may not exist yet).
    @ivar region: the region in SigV4 credential scopes and GetBucketLocation.
    @ivar accessKey: explicit access key id, or C{None} to use the stored or
        generated pair (see L{fasterstore.credentials}).
    @ivar secretKey: explicit secret key, given exactly when C{accessKey} is.
    @ivar credentialsFile: the TOML file of accounts (see
        L{fasterstore.accounts}), or C{None}.  With it, the explicit pair (if
        any) is one more account, C{default}, and no pair is generated.
    @ivar domains: lower-case base domains for virtual-hosted-style requests.
    @ivar configFile: the config file that was read, if any.
    @ivar fsync: C{False} only under C{--no-fsync}.
    @ivar segmentSize: target segment size in bytes.
    @ivar snapshotInterval: ignored (the option of the snapshots the SQLite
        metadata store replaced).
    @ivar shutdownTimeout: seconds in-flight requests get on SIGTERM.
    @ivar maxObjectSize: largest single PUT body in bytes.
    @ivar reserve: free bytes of the drive object data may not use, so
        that metadata commits, deletes and compaction work on a full disk
        (0: refuse only uploads that do not fit at all).
    @ivar drives: directories for object data, never empty: the data
        directory itself when no C{--drive} is given.  One entry until
        erasure coding lands.
    @ivar threads: disk thread pool size.
    @ivar workers: how many processes serve the node (0: one per CPU); see
        L{fasterstore.workers}.
    @ivar multipartTTL: age at which incomplete multipart uploads are aborted.
    @ivar accessLog: access log file, C{"-"} for the twistd log, or C{None}
        for none (the default: a log line per request costs throughput).
    @ivar headerTimeout: seconds a request head may take (0: no deadline).
    @ivar minUploadRate: bytes/s a body must average over each
        C{uploadRateWindow} (0: no minimum).
    @ivar uploadRateWindow: seconds the upload rate is averaged over.
    @ivar maxConnections: client connections served at once (0: no limit);
        by default 1024, or three quarters of the soft C{RLIMIT_NOFILE} when
        that is lower (see
        L{fasterstore.http.channel.defaultMaxConnections}).
    @ivar httpParser: the HTTP/1.1 parser of client connections, one of
        L{HTTP_PARSERS}: C{"twisted"} (twisted.web's channel, the default)
        or C{"httptools"} (L{fasterstore.http.lean.LeanChannel}).
    @ivar compactionThreshold: the dead fraction of a sealed segment's
        bytes at which compaction rewrites it, in (0, 1); read by the
        compaction service.
    @ivar compactionRate: bytes per second compaction may copy (0: no
        compaction); read by the compaction service.
    @ivar compactionInterval: seconds between two compaction passes.
    @ivar lifecycleInterval: seconds from the end of one lifecycle pass to
        the start of the next.
    @ivar testClockOffsetFile: for tests only: a file whose number of
        seconds is added to the background services' clock (see
        L{fasterstore.service.OffsetClock}); C{None}, the default, in
        production.
    """

    listen: Tuple[str, ...] = attrs.field(default=(DEFAULT_LISTEN,))
    dataDir: FilePath[str] = attrs.field(factory=_defaultDataDir)
    region: str = "us-east-1"
    accessKey: Optional[str] = attrs.field(default=None)
    secretKey: Optional[str] = attrs.field(default=None, repr=False)
    credentialsFile: Optional[FilePath[str]] = None
    domains: Tuple[str, ...] = ()
    configFile: Optional[FilePath[str]] = None
    fsync: bool = True
    segmentSize: int = attrs.field(default=256 * MiB, validator=_positive("number of bytes"))
    snapshotInterval: float = attrs.field(default=60.0, validator=_positive("number of seconds"))
    shutdownTimeout: float = attrs.field(default=30.0, validator=_nonNegative)
    maxObjectSize: int = attrs.field(default=5 * GiB, validator=_positive("number of bytes"))
    reserve: int = attrs.field(default=DEFAULT_RESERVE, validator=_nonNegativeCount)
    drives: Tuple[FilePath[str], ...] = attrs.field()
    threads: int = attrs.field(default=8, validator=_positive("number of threads"))
    workers: int = attrs.field(default=0, validator=_nonNegativeCount)
    accessLog: Optional[str] = None
    multipartTTL: float = attrs.field(default=7 * 86400.0, validator=_positive("number of seconds"))
    headerTimeout: float = attrs.field(default=20.0, validator=_nonNegative)
    minUploadRate: int = attrs.field(default=1024, validator=_nonNegativeCount)
    uploadRateWindow: float = attrs.field(default=30.0, validator=_positive("number of seconds"))
    maxConnections: int = attrs.field(factory=_defaultMaxConnections, validator=_nonNegativeCount)
    httpParser: str = attrs.field(default="twisted", validator=_httpParser)
    compactionThreshold: float = attrs.field(default=DEFAULT_COMPACTION_THRESHOLD, validator=_openFraction)
    compactionRate: int = attrs.field(default=DEFAULT_COMPACTION_RATE, validator=_nonNegativeCount)
    compactionInterval: float = attrs.field(
        default=DEFAULT_COMPACTION_INTERVAL, validator=_positive("number of seconds")
    )
    lifecycleInterval: float = attrs.field(
        default=DEFAULT_LIFECYCLE_INTERVAL, validator=_positive("number of seconds")
    )
    testClockOffsetFile: Optional[FilePath[str]] = None

    @drives.default
    def _drivesDefault(self) -> Tuple[FilePath[str], ...]:
        """One drive, the data directory, until more are configured."""
        return (self.dataDir,)

    @listen.validator
    def _checkListen(self, attribute: "attrs.Attribute[Any]", value: Tuple[str, ...]) -> None:
        """At least one listener."""
        if not value:
            raise ConfigError("at least one listen endpoint is required")

    @accessKey.validator
    def _checkKeys(self, attribute: "attrs.Attribute[Any]", value: Optional[str]) -> None:
        """Both keys or neither; a key id that survives an Authorization header."""
        if (self.accessKey is None) != (self.secretKey is None):
            raise ConfigError("access-key and secret-key must be given together (or neither, to use generated ones)")
        if self.accessKey is not None:
            if not self.accessKey or re.search(r"[\s,=]", self.accessKey):
                raise ConfigError("access-key must be non-empty, without spaces, ',' or '='")
            if not self.secretKey:
                raise ConfigError("secret-key must be non-empty")

    @drives.validator
    def _checkDrives(self, attribute: "attrs.Attribute[Any]", value: Tuple[FilePath[str], ...]) -> None:
        """Exactly one drive until erasure coding spreads data over several."""
        if len(value) != 1:
            raise ConfigError(
                f"only one drive is supported until erasure coding lands; {len(value)} were given"
            )


# -- resolving ---------------------------------------------------------------

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def checkEndpoint(description: str) -> None:
    """
    Parse an endpoint string the way the server will, against a reactor that
    never listens, so a typo or a missing TLS key fails at startup with a
    clear message rather than a traceback from deep in the service.
    """
    from twisted.internet.testing import MemoryReactor

    try:
        serverFromString(MemoryReactor(), description)
    except Exception as e:
        hint = ""
        if description.startswith("systemd:"):
            hint = " (systemd: endpoints need a socket passed in by systemd socket activation)"
        raise ConfigError(f"listen endpoint {description!r} is not usable: {e or type(e).__name__}{hint}") from e


def checkDomain(domain: str) -> str:
    """A base domain, normalised to lower case without a leading or trailing dot."""
    normal = domain.strip().strip(".").lower()
    if not normal or not all(_HOSTNAME_LABEL.match(label) for label in normal.split(".")):
        raise ConfigError(f"domain {domain!r} is not a valid host name")
    return normal


def readConfigFile(path: FilePath[str]) -> Dict[str, Any]:
    """
    The options in a TOML config file, keyed by long option name and parsed;
    relative paths are taken relative to the file's own directory.
    """
    try:
        with path.open("r") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path.path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path.path} is not valid TOML: {e}") from e
    values: Dict[str, Any] = {}
    base = path.parent()
    for key, raw in document.items():
        spec = OPTIONS_BY_NAME.get(key)
        if spec is None or spec.name == "config":
            known = ", ".join(s.name for s in OPTIONS if s.name != "config")
            raise ConfigError(f"config file {path.path}: unknown option {key!r} (known: {known})")
        try:
            value = spec.parse(raw)
        except ValueError as e:
            raise ConfigError(f"config file {path.path}: {key}: {e}") from e
        if spec.kind == "path":
            value = _resolvePath(base, value)
        elif spec.kind == "paths":
            value = tuple(_resolvePath(base, v) for v in value)
        values[key] = value
    return values


def _resolvePath(base: FilePath[str], path: str) -> str:
    """C{path}, made absolute against C{base} if it is relative; C{~} expanded."""
    return os.path.join(base.path, os.path.expanduser(path))


def readEnvironment(environ: Mapping[str, str]) -> Dict[str, Any]:
    """The options set in C{FASTERSTORE_*} variables; an empty variable counts as unset."""
    values: Dict[str, Any] = {}
    for spec in OPTIONS:
        raw = environ.get(spec.envVar)
        if raw is None or raw == "":
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as e:
            raise ConfigError(f"environment variable {spec.envVar}: {e}") from e
    return values


def resolveSettings(
    commandLine: Mapping[str, Any],
    environ: Mapping[str, str],
) -> Settings:
    """
    Merge the three sources, highest precedence first, and validate.

    @param commandLine: options given on the command line, by long name,
        already parsed (absent or C{None} or an empty list when not given).
    @param environ: the process environment (only C{FASTERSTORE_*} is read).
    """
    given = {k: v for k, v in commandLine.items() if v not in (None, (), [], False)}
    parsedCommandLine: Dict[str, Any] = {}
    for key, raw in given.items():
        spec = OPTIONS_BY_NAME[key]
        try:
            parsedCommandLine[key] = spec.parse(raw)
        except ValueError as e:
            raise ConfigError(f"--{key}: {e}") from e
    fromEnvironment = readEnvironment(environ)

    configPath: Optional[str] = parsedCommandLine.get("config", fromEnvironment.get("config"))
    configFile = FilePath(os.path.abspath(os.path.expanduser(configPath))) if configPath else None
    fromFile = readConfigFile(configFile) if configFile is not None else {}

    merged: Dict[str, Any] = {}
    for source in (fromFile, fromEnvironment, parsedCommandLine):
        merged.update(source)
    return _build(merged, configFile)


def _build(values: Mapping[str, Any], configFile: Optional[FilePath[str]]) -> Settings:
    """Turn merged option values into L{Settings}, checking what attrs cannot."""
    kwargs: Dict[str, Any] = {"configFile": configFile}
    for name, value in values.items():
        if name == "config":
            continue
        kwargs[OPTIONS_BY_NAME[name].field] = value

    if "listen" in kwargs:
        kwargs["listen"] = tuple(kwargs["listen"])
    for endpoint in kwargs.get("listen", (DEFAULT_LISTEN,)):
        checkEndpoint(endpoint)

    if "dataDir" in kwargs:
        if not kwargs["dataDir"]:
            raise ConfigError("data-dir must not be empty")
        kwargs["dataDir"] = FilePath(os.path.abspath(os.path.expanduser(kwargs["dataDir"])))
        dataDir = kwargs["dataDir"]
    else:
        dataDir = _defaultDataDir()
    if dataDir.exists() and not dataDir.isdir():
        raise ConfigError(f"data-dir {dataDir.path} exists and is not a directory")

    if "drives" in kwargs:
        drives = []
        for drive in kwargs["drives"]:
            path = FilePath(os.path.abspath(os.path.expanduser(drive)))
            if not path.isdir():
                raise ConfigError(f"drive {path.path} is not an existing directory")
            drives.append(path)
        kwargs["drives"] = tuple(drives)

    if "credentialsFile" in kwargs:
        kwargs["credentialsFile"] = _checkCredentialsFile(
            kwargs["credentialsFile"], kwargs.get("accessKey"), kwargs.get("secretKey")
        )

    if "testClockOffsetFile" in kwargs:
        if not kwargs["testClockOffsetFile"]:
            raise ConfigError("test-clock-offset-file must not be empty")
        kwargs["testClockOffsetFile"] = FilePath(os.path.abspath(os.path.expanduser(kwargs["testClockOffsetFile"])))

    region = kwargs.get("region")
    if region is not None and not _REGION.match(region):
        raise ConfigError(f"region {region!r} must be lower-case letters, digits and '-'")

    if "domains" in kwargs:
        kwargs["domains"] = tuple(dict.fromkeys(checkDomain(d) for d in kwargs["domains"]))

    noFsync = kwargs.pop("noFsync", False)
    kwargs["fsync"] = not noFsync

    try:
        return Settings(**kwargs)
    except ConfigError as e:
        # Name the option as the user wrote it, not the attribute.
        message = str(e)
        for spec in OPTIONS:
            message = re.sub(rf"^{spec.field}\b", spec.name, message)
        raise ConfigError(message) from None


def _checkCredentialsFile(
    path: str, accessKey: Optional[str], secretKey: Optional[str]
) -> FilePath[str]:
    """
    The credentials file, absolute, after loading it the way the server will
    (together with an explicit single pair), so a bad file stops C{twistd}
    with a message instead of a traceback.
    """
    if not path.strip():
        raise ConfigError("credentials must not be empty")
    credentialsFile = FilePath(os.path.abspath(os.path.expanduser(path)))
    from fasterstore.accounts import AccountsError, defaultAccount, loadAccounts

    single = None
    if accessKey and secretKey:
        single = defaultAccount(accessKey, secretKey)
    try:
        loadAccounts(credentialsFile, single)
    except AccountsError as e:
        raise ConfigError(f"credentials: {e}") from None
    return credentialsFile


def describeOptions() -> Sequence[Tuple[str, str, str]]:
    """(option, config key, environment variable) for every option, for docs and tests."""
    return [(f"--{spec.name}", spec.name, spec.envVar) for spec in OPTIONS]
