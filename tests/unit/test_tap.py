"""
Tests for L{fasterstore.tap}: the C{twistd fasterstore} options, the plugin
registration and L{fasterstore.tap.makeService}.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional

from twisted.application.service import IServiceMaker, MultiService
from twisted.plugin import getPlugins
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.config import DEFAULT_LISTEN, GiB, MiB, Settings
from fasterstore.tap import Options, makeService


def parse(argv: List[str], environ: Optional[Mapping[str, str]] = None) -> Options:
    """Options parsed from C{argv}, with an environment of our choosing."""
    options = Options(environ=environ or {})
    options.parseOptions(argv)
    return options


class OptionsTests(SynchronousTestCase):
    """The command line."""

    def test_defaults(self) -> None:
        """With nothing given, the settings are the documented defaults."""
        settings = parse([]).settings
        self.assertEqual(settings.listen, (DEFAULT_LISTEN,))
        self.assertEqual(settings.region, "us-east-1")
        self.assertEqual(settings.segmentSize, 256 * MiB)
        self.assertEqual(settings.maxObjectSize, 5 * GiB)
        self.assertTrue(settings.fsync)

    def test_everyOption(self) -> None:
        """Every option on the command line lands in its L{Settings} field."""
        dataDir = FilePath(self.mktemp())
        drive = FilePath(self.mktemp())
        drive.makedirs()
        settings = parse(
            [
                "--listen", "tcp:9001:interface=127.0.0.1",
                "-l", "unix:s3.sock",
                "--data-dir", dataDir.path,
                "--region", "eu-central-1",
                "--access-key", "AKIDEXAMPLE",
                "--secret-key", "secret",
                "--domain", "s3.example.com",
                "--domain", "s3.example.net",
                "--no-fsync",
                "--segment-size", "1MiB",
                "--snapshot-interval", "5",
                "--shutdown-timeout", "1.5",
                "--max-object-size", "1GiB",
                "--drive", drive.path,
                "--threads", "2",
            ]
        ).settings
        self.assertEqual(
            settings,
            Settings(
                listen=("tcp:9001:interface=127.0.0.1", "unix:s3.sock"),
                dataDir=dataDir,
                region="eu-central-1",
                accessKey="AKIDEXAMPLE",
                secretKey="secret",
                domains=("s3.example.com", "s3.example.net"),
                fsync=False,
                segmentSize=MiB,
                snapshotInterval=5.0,
                shutdownTimeout=1.5,
                maxObjectSize=GiB,
                drives=(drive,),
                threads=2,
            ),
        )

    def test_listenReplacesDefault(self) -> None:
        """Giving --listen replaces the default listener rather than adding to it."""
        self.assertEqual(parse(["--listen", "tcp:9100"]).settings.listen, ("tcp:9100",))

    def test_environment(self) -> None:
        """FASTERSTORE_* variables apply when the command line is silent."""
        options = parse(
            ["--region", "cli-region"],
            {"FASTERSTORE_ACCESS_KEY": "AKID", "FASTERSTORE_SECRET_KEY": "s", "FASTERSTORE_REGION": "env"},
        )
        self.assertEqual(options.settings.accessKey, "AKID")
        self.assertEqual(options.settings.region, "cli-region")

    def test_configFile(self) -> None:
        """--config reads a TOML file carrying the same options."""
        config = FilePath(self.mktemp())
        config.setContent(b'listen = ["tcp:9200"]\nthreads = 16\n')
        settings = parse(["--config", config.path, "--threads", "4"]).settings
        self.assertEqual(settings.listen, ("tcp:9200",))
        self.assertEqual(settings.threads, 4)

    def test_usageErrors(self) -> None:
        """Bad values become UsageError (twistd prints them with the usage text)."""
        for argv in [
            ["--segment-size", "-5"],
            ["--threads", "0"],
            ["--access-key", "AKID"],
            ["--listen", "nonsense:1"],
            ["--drive", "/nonexistent/fasterstore/drive"],
            ["stray-argument"],
        ]:
            self.assertRaises(UsageError, parse, argv)

    def test_twoDrivesExplained(self) -> None:
        """A second --drive is refused with a message saying why."""
        drives = [FilePath(self.mktemp()), FilePath(self.mktemp())]
        for d in drives:
            d.makedirs()
        e = self.assertRaises(UsageError, parse, ["--drive", drives[0].path, "--drive", drives[1].path])
        self.assertIn("only one drive is supported until erasure coding lands", str(e))

    def test_help(self) -> None:
        """--help lists every option, with its default."""
        text = str(Options(environ={}))
        for option in [
            "--listen", "--data-dir", "--region", "--access-key", "--secret-key", "--domain",
            "--config", "--no-fsync", "--segment-size", "--snapshot-interval",
            "--shutdown-timeout", "--max-object-size", "--drive", "--threads",
        ]:
            self.assertIn(option + ("" if option == "--no-fsync" else "="), text)
        self.assertIn(DEFAULT_LISTEN, text)


class PluginTests(SynchronousTestCase):
    """C{twistd fasterstore} is found through Twisted's plugin system."""

    def test_discoverable(self) -> None:
        """The plugin is an IServiceMaker named fasterstore using our options and module."""
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "fasterstore"]
        self.assertEqual(len(makers), 1)
        maker = makers[0]
        self.assertIs(maker.options, Options)
        self.assertIs(maker.makeService, makeService)


class MakeServiceTests(SynchronousTestCase):
    """L{makeService} hands the settings to C{fasterstore.service.makeStoreService}."""

    def test_delegates(self) -> None:
        """
        The parsed settings and the plugin's own command line (for workers
        of --workers) reach makeStoreService; its service is returned.
        """
        calls: List[Settings] = []
        arguments: List[Any] = []
        built = MultiService()

        def makeStoreService(settings: Settings, pluginArguments: Any = ()) -> MultiService:
            calls.append(settings)
            arguments.append(list(pluginArguments))
            return built

        fake: Any = ModuleType("fasterstore.service")
        fake.makeStoreService = makeStoreService
        import fasterstore

        package: Any = fasterstore
        missing = object()
        modules: Dict[str, Any] = sys.modules
        previousModule = modules.get("fasterstore.service", missing)
        previousAttribute = getattr(package, "service", missing)
        modules["fasterstore.service"] = fake

        def restore() -> None:
            if previousModule is missing:
                del modules["fasterstore.service"]
            else:
                modules["fasterstore.service"] = previousModule
            if previousAttribute is not missing:
                package.service = previousAttribute

        self.addCleanup(restore)

        options = parse(["--region", "test-1"])
        self.assertIs(makeService(options), built)
        self.assertEqual(calls, [options.settings])
        self.assertEqual(arguments, [["--region", "test-1"]])


class ConnectionLimitOptionsTests(SynchronousTestCase):
    """The connection limits on the twistd command line."""

    def test_parsed(self) -> None:
        """The four options land in their Settings fields."""
        settings = parse(
            ["--header-timeout", "1", "--min-upload-rate", "1000", "--upload-rate-window", "2", "--max-connections", "3"]
        ).settings
        self.assertEqual(
            (settings.headerTimeout, settings.minUploadRate, settings.uploadRateWindow, settings.maxConnections),
            (1.0, 1000, 2.0, 3),
        )

    def test_help(self) -> None:
        """--help lists them, with their defaults and what happens past them."""
        text = " ".join(str(Options(environ={})).split())
        for option in ["--header-timeout=", "--min-upload-rate=", "--upload-rate-window=", "--max-connections="]:
            self.assertIn(option, text)
        self.assertIn("503 SlowDown", text)
        self.assertIn("400 RequestTimeout", text)
        self.assertIn("[default: 20]", text)

    def test_usageErrors(self) -> None:
        """Bad values are usage errors."""
        for argv in [["--max-connections", "-1"], ["--header-timeout", "soon"], ["--upload-rate-window", "0"]]:
            self.assertRaises(UsageError, parse, argv)


class HTTPParserOptionTests(SynchronousTestCase):
    """--http-parser on the twistd command line."""

    def test_parsed(self) -> None:
        """It lands in Settings.httpParser; twisted by default."""
        self.assertEqual(parse(["--http-parser", "httptools"]).settings.httpParser, "httptools")
        self.assertEqual(parse([]).settings.httpParser, "twisted")

    def test_help(self) -> None:
        """--help names it, its values and its default."""
        text = " ".join(str(Options(environ={})).split())
        self.assertIn("--http-parser=", text)
        self.assertIn("'httptools'", text)
        self.assertIn("[default: twisted]", text)

    def test_usageError(self) -> None:
        """An unknown parser is a usage error."""
        self.assertRaises(UsageError, parse, ["--http-parser", "nginx"])
