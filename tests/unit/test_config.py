"""
Tests for L{fasterstore.config}: value parsing, the option table, config
files, the environment, precedence and validation.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.config import (
    DEFAULT_LISTEN,
    GiB,
    MiB,
    OPTIONS,
    ConfigError,
    Settings,
    checkDomain,
    checkEndpoint,
    describeOptions,
    parseDuration,
    parseFlag,
    parseList,
    parseSize,
    readConfigFile,
    resolveSettings,
)


def resolve(
    commandLine: Optional[Dict[str, Any]] = None, environ: Optional[Mapping[str, str]] = None
) -> Settings:
    """L{resolveSettings} with nothing given unless the test says so."""
    return resolveSettings(commandLine or {}, environ or {})


class ParserTests(SynchronousTestCase):
    """The small parsers every source goes through."""

    def test_sizes(self) -> None:
        """Sizes take plain bytes, binary units and decimal units."""
        self.assertEqual(parseSize("4096"), 4096)
        self.assertEqual(parseSize(4096), 4096)
        self.assertEqual(parseSize("256MiB"), 256 * MiB)
        self.assertEqual(parseSize("256m"), 256 * MiB)
        self.assertEqual(parseSize("5 GiB"), 5 * GiB)
        self.assertEqual(parseSize("1.5G"), int(1.5 * GiB))
        self.assertEqual(parseSize("2MB"), 2_000_000)

    def test_badSizes(self) -> None:
        """Unknown units, negative text, booleans and floats are refused."""
        for bad in ["", "12 parsecs", "-1", "MiB", True, 1.5, None]:
            self.assertRaises(ValueError, parseSize, bad)

    def test_durations(self) -> None:
        """Durations are seconds, with optional s/m/h/d units."""
        self.assertEqual(parseDuration("30"), 30.0)
        self.assertEqual(parseDuration(2), 2.0)
        self.assertEqual(parseDuration("2.5s"), 2.5)
        self.assertEqual(parseDuration("5m"), 300.0)
        self.assertEqual(parseDuration("1h"), 3600.0)
        self.assertEqual(parseDuration("7d"), 604800.0)
        for bad in ["soon", "-3", "3w", False]:
            self.assertRaises(ValueError, parseDuration, bad)

    def test_flags(self) -> None:
        """Flags accept TOML booleans and the usual words for on and off."""
        for on in [True, "1", "true", "YES", "on"]:
            self.assertIs(parseFlag(on), True)
        for off in [False, "0", "false", "No", "off"]:
            self.assertIs(parseFlag(off), False)
        self.assertRaises(ValueError, parseFlag, "maybe")

    def test_lists(self) -> None:
        """Lists are TOML arrays, or comma-separated text (trimmed, empties dropped)."""
        self.assertEqual(parseList(["a", "b"]), ("a", "b"))
        self.assertEqual(parseList("tcp:1, tcp:2,"), ("tcp:1", "tcp:2"))
        self.assertRaises(ValueError, parseList, [1, 2])


class OptionTableTests(SynchronousTestCase):
    """The single table every source is derived from."""

    def test_environmentNames(self) -> None:
        """Environment variables are FASTERSTORE_ plus the option in upper snake case."""
        names = {option: env for option, _, env in describeOptions()}
        self.assertEqual(names["--access-key"], "FASTERSTORE_ACCESS_KEY")
        self.assertEqual(names["--secret-key"], "FASTERSTORE_SECRET_KEY")
        self.assertEqual(names["--data-dir"], "FASTERSTORE_DATA_DIR")
        self.assertEqual(names["--no-fsync"], "FASTERSTORE_NO_FSYNC")

    def test_everyOptionFillsAField(self) -> None:
        """Each option names a real L{Settings} field (or is the config file itself)."""
        fields = {a.name for a in Settings.__attrs_attrs__}
        for spec in OPTIONS:
            if spec.name != "no-fsync":
                self.assertIn(spec.field, fields)

    def test_everyOptionDocumented(self) -> None:
        """docs/configuration.md mentions every option, config key and variable."""
        docs = FilePath(__file__).parent().parent().parent().descendant(["docs", "configuration.md"])
        text = docs.getContent().decode("utf-8")
        for option, _, env in describeOptions():
            self.assertIn(option, text)
            self.assertIn(env, text)


class SettingsTests(SynchronousTestCase):
    """L{Settings} built directly, as embedding code does."""

    def test_defaults(self) -> None:
        """The documented defaults."""
        settings = Settings()
        self.assertEqual(settings.listen, (DEFAULT_LISTEN,))
        self.assertEqual(settings.dataDir, FilePath(os.path.abspath("data")))
        self.assertEqual(settings.region, "us-east-1")
        self.assertIsNone(settings.accessKey)
        self.assertIsNone(settings.secretKey)
        self.assertEqual(settings.domains, ())
        self.assertTrue(settings.fsync)
        self.assertEqual(settings.segmentSize, 256 * MiB)
        self.assertEqual(settings.snapshotInterval, 60.0)
        self.assertEqual(settings.shutdownTimeout, 30.0)
        self.assertEqual(settings.maxObjectSize, 5 * GiB)
        self.assertEqual(settings.drives, (settings.dataDir,))
        self.assertEqual(settings.threads, 8)

    def test_driveDefaultsToDataDir(self) -> None:
        """With no drive given, object data lives in the data directory."""
        dataDir = FilePath(self.mktemp())
        self.assertEqual(Settings(dataDir=dataDir).drives, (dataDir,))

    def test_secretNotInRepr(self) -> None:
        """The secret key never shows up in a logged repr."""
        settings = Settings(accessKey="AKID", secretKey="hunter2hunter2")
        self.assertNotIn("hunter2", repr(settings))

    def test_validation(self) -> None:
        """Nonsense values are refused at construction."""
        self.assertRaises(ConfigError, Settings, segmentSize=0)
        self.assertRaises(ConfigError, Settings, threads=0)
        self.assertRaises(ConfigError, Settings, snapshotInterval=-1.0)
        self.assertRaises(ConfigError, Settings, shutdownTimeout=float("nan"))
        self.assertRaises(ConfigError, Settings, listen=())
        self.assertRaises(ConfigError, Settings, accessKey="AKID")
        self.assertRaises(ConfigError, Settings, secretKey="secret")
        self.assertRaises(ConfigError, Settings, accessKey="a b", secretKey="secret")
        self.assertRaises(ConfigError, Settings, accessKey="AKID", secretKey="")
        self.assertRaises(ConfigError, Settings, drives=())
        self.assertEqual(Settings(shutdownTimeout=0.0).shutdownTimeout, 0.0)


class EndpointTests(SynchronousTestCase):
    """Listen endpoints are checked by actually parsing them."""

    def test_good(self) -> None:
        """TCP, TCP6 and UNIX endpoint strings pass."""
        checkEndpoint("tcp:9000:interface=127.0.0.1")
        checkEndpoint("tcp6:9000:interface=\\:\\:1")
        checkEndpoint("unix:/run/fasterstore.sock:mode=660")

    def test_bad(self) -> None:
        """An unknown type or a malformed port is a ConfigError naming the string."""
        e = self.assertRaises(ConfigError, checkEndpoint, "tpc:9000")
        self.assertIn("'tpc:9000'", str(e))
        self.assertRaises(ConfigError, checkEndpoint, "tcp:ninety")

    def test_missingCertificate(self) -> None:
        """An ssl: endpoint whose key file is missing fails now, not at listen time."""
        missing = self.mktemp()
        self.assertRaises(ConfigError, checkEndpoint, f"ssl:9443:privateKey={missing}:certKey={missing}")

    def test_systemdActivated(self) -> None:
        """Under socket activation, systemd: endpoints by index and by name pass."""
        from twisted.internet import endpoints
        from twisted.python.systemd import ListenFDs

        self.patch(endpoints._SystemdParser, "_sddaemon", ListenFDs([3], ("fasterstore",)))
        checkEndpoint("systemd:domain=INET:index=0")
        checkEndpoint("systemd:domain=INET:name=fasterstore")

    def test_systemdOutsideSystemd(self) -> None:
        """A systemd: endpoint with no inherited socket explains what it needs."""
        e = self.assertRaises(ConfigError, checkEndpoint, "systemd:domain=INET:index=99")
        self.assertIn("socket activation", str(e))


class DomainTests(SynchronousTestCase):
    """Virtual-hosted-style base domains."""

    def test_normalised(self) -> None:
        """Case and leading/trailing dots are normalised away."""
        self.assertEqual(checkDomain(".S3.Example.COM."), "s3.example.com")

    def test_invalid(self) -> None:
        """Empty names, bad characters and labels with edge hyphens are refused."""
        for bad in ["", ".", "exa mple.com", "-bad.com", "bad-.com", "a..b"]:
            self.assertRaises(ConfigError, checkDomain, bad)


class ConfigFileTests(SynchronousTestCase):
    """The TOML config file."""

    def writeConfig(self, text: str) -> FilePath[str]:
        """A config file holding C{text}, in a fresh directory."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        path = directory.child("fasterstore.toml")
        path.setContent(text.encode("utf-8"))
        return path

    def test_everyKind(self) -> None:
        """Every kind of option can be set in the file, with native TOML types."""
        drive = FilePath(self.mktemp())
        drive.makedirs()
        path = self.writeConfig(
            f"""
            listen = ["tcp:9001", "unix:s3.sock"]
            data-dir = "/var/lib/fasterstore"
            region = "eu-west-1"
            access-key = "AKIDEXAMPLE"
            secret-key = "wJalrXUtnFEMI"
            domain = "s3.example.com"
            no-fsync = true
            segment-size = "64MiB"
            snapshot-interval = 120
            shutdown-timeout = 2.5
            max-object-size = 1073741824
            drive = ["{drive.path}"]
            threads = 4
            """.replace("\n            ", "\n")
        )
        settings = resolve({"config": path.path})
        self.assertEqual(settings.listen, ("tcp:9001", "unix:s3.sock"))
        self.assertEqual(settings.dataDir, FilePath("/var/lib/fasterstore"))
        self.assertEqual(settings.region, "eu-west-1")
        self.assertEqual((settings.accessKey, settings.secretKey), ("AKIDEXAMPLE", "wJalrXUtnFEMI"))
        self.assertEqual(settings.domains, ("s3.example.com",))
        self.assertFalse(settings.fsync)
        self.assertEqual(settings.segmentSize, 64 * MiB)
        self.assertEqual(settings.snapshotInterval, 120.0)
        self.assertEqual(settings.shutdownTimeout, 2.5)
        self.assertEqual(settings.maxObjectSize, GiB)
        self.assertEqual(settings.drives, (drive,))
        self.assertEqual(settings.threads, 4)
        self.assertEqual(settings.configFile, path)

    def test_relativePaths(self) -> None:
        """Relative paths in the file are relative to the file, not the working directory."""
        path = self.writeConfig('data-dir = "store"\n')
        self.assertEqual(resolve({"config": path.path}).dataDir, path.sibling("store"))

    def test_unknownKey(self) -> None:
        """A misspelt key is an error naming it, not silently ignored."""
        path = self.writeConfig('data_dir = "x"\n')
        e = self.assertRaises(ConfigError, readConfigFile, path)
        self.assertIn("'data_dir'", str(e))

    def test_configKeyRefused(self) -> None:
        """A config file cannot point at another config file."""
        path = self.writeConfig('config = "other.toml"\n')
        self.assertRaises(ConfigError, readConfigFile, path)

    def test_badToml(self) -> None:
        """Invalid TOML is a ConfigError naming the file."""
        path = self.writeConfig("listen = [\n")
        e = self.assertRaises(ConfigError, readConfigFile, path)
        self.assertIn(path.path, str(e))

    def test_badValue(self) -> None:
        """A value of the wrong type is an error naming the key."""
        path = self.writeConfig("threads = \"many\"\n")
        e = self.assertRaises(ConfigError, readConfigFile, path)
        self.assertIn("threads", str(e))

    def test_missingFile(self) -> None:
        """A config file that does not exist is an error, not an empty config."""
        e = self.assertRaises(ConfigError, resolve, {"config": self.mktemp()})
        self.assertIn("cannot read config file", str(e))


class PrecedenceTests(SynchronousTestCase):
    """Command line > environment > config file > default."""

    def setUp(self) -> None:
        """A config file setting region, threads and no-fsync."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        self.config = directory.child("c.toml")
        self.config.setContent(b'region = "from-file"\nthreads = 3\nno-fsync = true\n')

    def test_fileOverDefault(self) -> None:
        """The file beats the defaults."""
        settings = resolve({"config": self.config.path})
        self.assertEqual((settings.region, settings.threads, settings.fsync), ("from-file", 3, False))

    def test_environmentOverFile(self) -> None:
        """The environment beats the file, including turning a flag back off."""
        settings = resolve(
            {"config": self.config.path},
            {"FASTERSTORE_REGION": "from-env", "FASTERSTORE_NO_FSYNC": "false"},
        )
        self.assertEqual((settings.region, settings.threads, settings.fsync), ("from-env", 3, True))

    def test_commandLineOverEnvironment(self) -> None:
        """The command line beats the environment."""
        settings = resolve(
            {"config": self.config.path, "region": "from-cli"},
            {"FASTERSTORE_REGION": "from-env"},
        )
        self.assertEqual(settings.region, "from-cli")

    def test_configFromEnvironment(self) -> None:
        """FASTERSTORE_CONFIG names the config file when --config does not."""
        settings = resolve({}, {"FASTERSTORE_CONFIG": self.config.path})
        self.assertEqual(settings.region, "from-file")

    def test_emptyVariableIsUnset(self) -> None:
        """An empty variable does not override the file with an empty value."""
        settings = resolve({"config": self.config.path}, {"FASTERSTORE_REGION": ""})
        self.assertEqual(settings.region, "from-file")

    def test_listsReplaceNotMerge(self) -> None:
        """A repeatable option from a higher source replaces the lower one's list."""
        self.config.setContent(b'listen = ["tcp:1111", "tcp:2222"]\n')
        settings = resolve({"config": self.config.path}, {"FASTERSTORE_LISTEN": "tcp:3333"})
        self.assertEqual(settings.listen, ("tcp:3333",))

    def test_keysFromEnvironment(self) -> None:
        """The documented key variables set the key pair."""
        settings = resolve({}, {"FASTERSTORE_ACCESS_KEY": "AKID", "FASTERSTORE_SECRET_KEY": "s3cr3t"})
        self.assertEqual((settings.accessKey, settings.secretKey), ("AKID", "s3cr3t"))

    def test_keysSplitAcrossSources(self) -> None:
        """A pair may come half from the file and half from the environment."""
        self.config.setContent(b'access-key = "AKID"\n')
        settings = resolve({"config": self.config.path}, {"FASTERSTORE_SECRET_KEY": "s3cr3t"})
        self.assertEqual((settings.accessKey, settings.secretKey), ("AKID", "s3cr3t"))

    def test_badEnvironmentValue(self) -> None:
        """A malformed variable is an error naming the variable."""
        e = self.assertRaises(ConfigError, resolve, {}, {"FASTERSTORE_SEGMENT_SIZE": "huge"})
        self.assertIn("FASTERSTORE_SEGMENT_SIZE", str(e))


class ValidationTests(SynchronousTestCase):
    """Checks that need more than one field, or the filesystem."""

    def test_oneKeyOnly(self) -> None:
        """An access key without a secret (or the reverse) is refused with both names."""
        e = self.assertRaises(ConfigError, resolve, {"access-key": "AKID"})
        self.assertIn("access-key and secret-key", str(e))

    def test_errorsNameOptions(self) -> None:
        """Errors from L{Settings} name the option as the user spells it."""
        e = self.assertRaises(ConfigError, resolve, {"segment-size": "0"})
        self.assertTrue(str(e).startswith("segment-size "), str(e))

    def test_dataDirIsAFile(self) -> None:
        """A data directory that is a regular file is refused."""
        path = FilePath(self.mktemp())
        path.setContent(b"")
        self.assertRaises(ConfigError, resolve, {"data-dir": path.path})

    def test_dataDirMadeAbsolute(self) -> None:
        """A relative data directory is resolved now, before twistd may chdir."""
        self.assertEqual(resolve({"data-dir": "rel"}).dataDir, FilePath(os.path.abspath("rel")))

    def test_driveMustExist(self) -> None:
        """A drive that is not an existing directory is refused."""
        e = self.assertRaises(ConfigError, resolve, {"drive": [self.mktemp()]})
        self.assertIn("not an existing directory", str(e))

    def test_oneDriveOnly(self) -> None:
        """Two drives are refused until erasure coding lands, and the error says so."""
        drives = []
        for _ in range(2):
            drive = FilePath(self.mktemp())
            drive.makedirs()
            drives.append(drive.path)
        e = self.assertRaises(ConfigError, resolve, {"drive": drives})
        self.assertIn("erasure coding", str(e))

    def test_region(self) -> None:
        """A region with characters that cannot be in a credential scope is refused."""
        self.assertRaises(ConfigError, resolve, {"region": "US East/1"})

    def test_domainsDeduplicated(self) -> None:
        """Domains are normalised and repeated ones dropped, order kept."""
        settings = resolve({"domain": ["B.example", "a.example", "b.example."]})
        self.assertEqual(settings.domains, ("b.example", "a.example"))

    def test_badListen(self) -> None:
        """Every listen endpoint is checked."""
        self.assertRaises(ConfigError, resolve, {"listen": ["tcp:9000", "bogus:1"]})


class CredentialsFileTests(SynchronousTestCase):
    """C{--credentials}: the accounts file, in all three sources, checked at startup."""

    GOOD = b'[accounts.alice]\nkeys = [{ access-key = "AKALICE", secret-key = "s" }]\n'

    def setUp(self) -> None:
        """A directory holding a valid credentials file."""
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.path = self.directory.child("credentials.toml")
        self.path.setContent(self.GOOD)

    def test_default(self) -> None:
        """No credentials file unless one is given."""
        self.assertIsNone(Settings().credentialsFile)
        self.assertIsNone(resolve().credentialsFile)

    def test_everySource(self) -> None:
        """The option, its variable and its config key all name the file."""
        self.assertEqual(resolve({"credentials": self.path.path}).credentialsFile, self.path)
        self.assertEqual(resolve({}, {"FASTERSTORE_CREDENTIALS": self.path.path}).credentialsFile, self.path)
        config = self.directory.child("c.toml")
        config.setContent(b'credentials = "credentials.toml"\n')
        # Relative to the config file, like every path in it.
        self.assertEqual(resolve({"config": config.path}).credentialsFile, self.path)

    def test_madeAbsolute(self) -> None:
        """A relative path is resolved now, before twistd may chdir (SIGHUP re-reads it later)."""
        relative = os.path.relpath(self.path.path)
        self.assertEqual(resolve({"credentials": relative}).credentialsFile, self.path)

    def test_withSinglePair(self) -> None:
        """--access-key/--secret-key may be given too (they become the account 'default')."""
        settings = resolve({"credentials": self.path.path, "access-key": "AKONE", "secret-key": "s"})
        self.assertEqual((settings.credentialsFile, settings.accessKey), (self.path, "AKONE"))

    def test_singlePairCollides(self) -> None:
        """A single pair whose key is also in the file is refused at startup."""
        e = self.assertRaises(
            ConfigError, resolve, {"credentials": self.path.path, "access-key": "AKALICE", "secret-key": "s"}
        )
        self.assertIn("'AKALICE'", str(e))

    def test_missing(self) -> None:
        """A file that does not exist stops startup, naming the option and the path."""
        missing = self.directory.child("nope.toml")
        e = self.assertRaises(ConfigError, resolve, {"credentials": missing.path})
        self.assertTrue(str(e).startswith("credentials: "), str(e))
        self.assertIn(missing.path, str(e))

    def test_invalid(self) -> None:
        """An invalid file stops startup with the file's own error."""
        self.path.setContent(b'[accounts.alice]\nkeys = [{ access-key = "AKALICE", secret-key = "" }]\n')
        e = self.assertRaises(ConfigError, resolve, {"credentials": self.path.path})
        self.assertIn("secret-key is empty", str(e))
        self.assertIn(self.path.path, str(e))

    def test_empty(self) -> None:
        """An empty value is refused rather than read as the working directory."""
        self.assertRaises(ConfigError, resolve, {}, {"FASTERSTORE_CREDENTIALS": " "})


class ConnectionLimitSettingsTests(SynchronousTestCase):
    """--header-timeout, --min-upload-rate, --upload-rate-window and --max-connections."""

    def test_defaults(self) -> None:
        """The documented defaults, the same as the HTTP layer's own."""
        from fasterstore.http.channel import ConnectionLimits, defaultMaxConnections

        settings = Settings()
        self.assertEqual(settings.headerTimeout, 20.0)
        self.assertEqual(settings.minUploadRate, 1024)
        self.assertEqual(settings.uploadRateWindow, 30.0)
        self.assertEqual(settings.maxConnections, defaultMaxConnections())
        limits = ConnectionLimits()
        self.assertEqual(
            (limits.headerTimeout, limits.minUploadRate, limits.uploadRateWindow, limits.maxConnections),
            (settings.headerTimeout, settings.minUploadRate, settings.uploadRateWindow, settings.maxConnections),
        )

    def test_everySource(self) -> None:
        """Each can be set from the command line, the environment and the config file, with units."""
        fromCommandLine = resolve(
            {"header-timeout": "5", "min-upload-rate": "2KiB", "upload-rate-window": "1m", "max-connections": "64"}
        )
        self.assertEqual(
            (fromCommandLine.headerTimeout, fromCommandLine.minUploadRate),
            (5.0, 2048),
        )
        self.assertEqual((fromCommandLine.uploadRateWindow, fromCommandLine.maxConnections), (60.0, 64))
        fromEnvironment = resolve(
            {},
            {
                "FASTERSTORE_HEADER_TIMEOUT": "2.5",
                "FASTERSTORE_MIN_UPLOAD_RATE": "512",
                "FASTERSTORE_UPLOAD_RATE_WINDOW": "10s",
                "FASTERSTORE_MAX_CONNECTIONS": "10",
            },
        )
        self.assertEqual(
            (fromEnvironment.headerTimeout, fromEnvironment.minUploadRate, fromEnvironment.uploadRateWindow),
            (2.5, 512, 10.0),
        )
        self.assertEqual(fromEnvironment.maxConnections, 10)
        directory = FilePath(self.mktemp())
        directory.makedirs()
        config = directory.child("c.toml")
        config.setContent(
            b'header-timeout = 7\nmin-upload-rate = "1KB"\nupload-rate-window = 15\nmax-connections = 0\n'
        )
        fromFile = resolve({"config": config.path})
        self.assertEqual(
            (fromFile.headerTimeout, fromFile.minUploadRate, fromFile.uploadRateWindow, fromFile.maxConnections),
            (7.0, 1000, 15.0, 0),
        )

    def test_zeroTurnsOff(self) -> None:
        """0 is accepted for the deadline, the rate and the connection bound (off)."""
        settings = resolve({"header-timeout": "0", "min-upload-rate": "0", "max-connections": "0"})
        self.assertEqual((settings.headerTimeout, settings.minUploadRate, settings.maxConnections), (0.0, 0, 0))

    def test_invalid(self) -> None:
        """Negative or nonsense values, and a zero window, are refused naming the option."""
        for options, name in [
            ({"header-timeout": "-1"}, "header-timeout"),
            ({"min-upload-rate": "fast"}, "min-upload-rate"),
            ({"upload-rate-window": "0"}, "upload-rate-window"),
            ({"max-connections": "-5"}, "max-connections"),
            ({"max-connections": "many"}, "max-connections"),
        ]:
            e = self.assertRaises(ConfigError, resolve, options)
            self.assertIn(name, str(e))
        self.assertRaises(ConfigError, Settings, maxConnections=-1)
        self.assertRaises(ConfigError, Settings, minUploadRate=-1)
        self.assertRaises(ConfigError, Settings, headerTimeout=float("inf"))


class SpaceAndCompactionSettingsTests(SynchronousTestCase):
    """--reserve, --compaction-threshold and --compaction-rate."""

    def test_defaults(self) -> None:
        """
        The documented defaults; FasterStore.create, for embedding code,
        reserves as much as the command line does.
        """
        import inspect

        from fasterstore.service import FasterStore

        settings = Settings()
        self.assertEqual(settings.reserve, 512 * MiB)
        self.assertEqual(settings.compactionThreshold, 0.25)
        self.assertEqual(settings.compactionRate, 64 * MiB)
        self.assertEqual(inspect.signature(FasterStore.create).parameters["reserve"].default, settings.reserve)
        self.assertEqual(resolve().reserve, settings.reserve)

    def test_everySource(self) -> None:
        """Each can be set from the command line, the environment and the config file, sizes with units."""
        fromCommandLine = resolve(
            {"reserve": "4MiB", "compaction-threshold": "0.5", "compaction-rate": "10MiB"}
        )
        self.assertEqual(
            (fromCommandLine.reserve, fromCommandLine.compactionThreshold, fromCommandLine.compactionRate),
            (4 * MiB, 0.5, 10 * MiB),
        )
        fromEnvironment = resolve(
            {},
            {
                "FASTERSTORE_RESERVE": "1GiB",
                "FASTERSTORE_COMPACTION_THRESHOLD": "0.1",
                "FASTERSTORE_COMPACTION_RATE": "1000000",
            },
        )
        self.assertEqual(
            (fromEnvironment.reserve, fromEnvironment.compactionThreshold, fromEnvironment.compactionRate),
            (GiB, 0.1, 1_000_000),
        )
        directory = FilePath(self.mktemp())
        directory.makedirs()
        config = directory.child("c.toml")
        config.setContent(b'reserve = 1048576\ncompaction-threshold = 0.75\ncompaction-rate = "1MB"\n')
        fromFile = resolve({"config": config.path})
        self.assertEqual(
            (fromFile.reserve, fromFile.compactionThreshold, fromFile.compactionRate),
            (MiB, 0.75, 1_000_000),
        )
        config.setContent(b'compaction-threshold = "0.3"\n')
        self.assertEqual(resolve({"config": config.path}).compactionThreshold, 0.3)

    def test_zero(self) -> None:
        """A zero reserve (refuse only what does not fit) and a zero rate (no compaction) are accepted."""
        settings = resolve({"reserve": "0", "compaction-rate": "0"})
        self.assertEqual((settings.reserve, settings.compactionRate), (0, 0))

    def test_invalid(self) -> None:
        """Nonsense sizes and thresholds outside (0, 1) are refused naming the option."""
        for options, name in [
            ({"reserve": "-1"}, "reserve"),
            ({"reserve": "lots"}, "reserve"),
            ({"compaction-rate": "-1MiB"}, "compaction-rate"),
            ({"compaction-rate": "fast"}, "compaction-rate"),
            ({"compaction-threshold": "0"}, "compaction-threshold"),
            ({"compaction-threshold": "1"}, "compaction-threshold"),
            ({"compaction-threshold": "1.5"}, "compaction-threshold"),
            ({"compaction-threshold": "-0.25"}, "compaction-threshold"),
            ({"compaction-threshold": "nan"}, "compaction-threshold"),
            ({"compaction-threshold": "a quarter"}, "compaction-threshold"),
        ]:
            e = self.assertRaises(ConfigError, resolve, options)
            self.assertIn(name, str(e))
        e = self.assertRaises(ConfigError, resolve, {}, {"FASTERSTORE_COMPACTION_THRESHOLD": "2"})
        self.assertIn("compaction-threshold", str(e))
        directory = FilePath(self.mktemp())
        directory.makedirs()
        config = directory.child("c.toml")
        config.setContent(b"compaction-threshold = true\n")
        e = self.assertRaises(ConfigError, readConfigFile, config)
        self.assertIn("compaction-threshold", str(e))
        self.assertRaises(ConfigError, Settings, reserve=-1)
        self.assertRaises(ConfigError, Settings, compactionRate=-1)
        self.assertRaises(ConfigError, Settings, compactionThreshold=0.0)
        self.assertRaises(ConfigError, Settings, compactionThreshold=float("inf"))

    def test_twistdOptions(self) -> None:
        """twistd takes the three as parameters and hands them to Settings."""
        from fasterstore.tap import Options

        options = Options(environ={})
        options.parseOptions(["--reserve", "8MiB", "--compaction-threshold", "0.4", "--compaction-rate", "0"])
        self.assertEqual(
            (options.settings.reserve, options.settings.compactionThreshold, options.settings.compactionRate),
            (8 * MiB, 0.4, 0),
        )


class LifecycleSettingsTests(SynchronousTestCase):
    """--lifecycle-interval and the test-only --test-clock-offset-file."""

    def test_defaults(self) -> None:
        """A pass an hour; no test clock unless asked for."""
        settings = resolve()
        self.assertEqual(settings.lifecycleInterval, 3600.0)
        self.assertIsNone(settings.testClockOffsetFile)

    def test_everySource(self) -> None:
        """Both can be set from every source; the offset file is made absolute."""
        fromCommandLine = resolve({"lifecycle-interval": "5m", "test-clock-offset-file": "offset"})
        self.assertEqual(fromCommandLine.lifecycleInterval, 300.0)
        self.assertEqual(fromCommandLine.testClockOffsetFile, FilePath(os.path.abspath("offset")))
        fromEnvironment = resolve({}, {"FASTERSTORE_LIFECYCLE_INTERVAL": "1", "FASTERSTORE_TEST_CLOCK_OFFSET_FILE": "/tmp/o"})
        self.assertEqual((fromEnvironment.lifecycleInterval, fromEnvironment.testClockOffsetFile), (1.0, FilePath("/tmp/o")))
        directory = FilePath(self.mktemp())
        directory.makedirs()
        config = directory.child("c.toml")
        config.setContent(b'lifecycle-interval = "1d"\ntest-clock-offset-file = "clock"\n')
        fromFile = resolve({"config": config.path})
        self.assertEqual((fromFile.lifecycleInterval, fromFile.testClockOffsetFile), (86400.0, directory.child("clock")))

    def test_invalid(self) -> None:
        """A non-positive interval, or an empty offset file name, is refused naming the option."""
        for options, name in [
            ({"lifecycle-interval": "0"}, "lifecycle-interval"),
            ({"lifecycle-interval": "soon"}, "lifecycle-interval"),
        ]:
            e = self.assertRaises(ConfigError, resolve, options)
            self.assertIn(name, str(e))
        e = self.assertRaises(ConfigError, resolve, {}, {"FASTERSTORE_LIFECYCLE_INTERVAL": "0"})
        self.assertIn("lifecycle-interval", str(e))
        self.assertRaises(ConfigError, Settings, lifecycleInterval=0)


class HTTPParserSettingsTests(SynchronousTestCase):
    """--http-parser: which HTTP/1.1 channel serves client connections."""

    def test_default(self) -> None:
        """twisted.web's own parser, until the figures say otherwise."""
        self.assertEqual(Settings().httpParser, "twisted")
        self.assertEqual(resolve({}).httpParser, "twisted")

    def test_everySource(self) -> None:
        """Command line, environment and config file all set it."""
        self.assertEqual(resolve({"http-parser": "httptools"}).httpParser, "httptools")
        self.assertEqual(resolve({}, {"FASTERSTORE_HTTP_PARSER": "httptools"}).httpParser, "httptools")
        directory = FilePath(self.mktemp())
        directory.makedirs()
        config = directory.child("c.toml")
        config.setContent(b'http-parser = "httptools"\n')
        self.assertEqual(resolve({"config": config.path}).httpParser, "httptools")
        self.assertEqual(
            resolve({"http-parser": "twisted"}, {"FASTERSTORE_HTTP_PARSER": "httptools"}).httpParser, "twisted"
        )

    def test_unknown(self) -> None:
        """Any other value is refused, naming the option and the choices."""
        e = self.assertRaises(ConfigError, resolve, {"http-parser": "h11"})
        self.assertIn("http-parser", str(e))
        self.assertIn("httptools", str(e))
        self.assertRaises(ConfigError, Settings, httpParser="Twisted")

    def test_everyValueHasAChannel(self) -> None:
        """Each value names a channel of the service, and every channel has a value."""
        from fasterstore.config import HTTP_PARSERS
        from fasterstore.service import CHANNELS

        self.assertEqual(sorted(HTTP_PARSERS), sorted(CHANNELS))
