"""
C{twistd fasterstore}: command-line options and the service they build.

The options themselves (names, parsing, defaults, precedence over the
environment and the config file) live in L{fasterstore.config}; this module
is the thin C{twistd} face of them.
Tests: tests/unit/test_tap.py.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Mapping, Optional

from twisted.application.service import IService
from twisted.python import usage

from fasterstore.config import OPTIONS, ConfigError, Settings, resolveSettings


class Options(usage.Options):
    """
    Options for C{twistd fasterstore}.  After parsing, C{self.settings} holds
    the validated L{Settings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run FasterStore, an S3-compatible object store. Every option can also be "
        "set as FASTERSTORE_<OPTION> in the environment (e.g. FASTERSTORE_DATA_DIR) "
        "or as a key in the TOML file given to --config; the command line wins, "
        "then the environment, then the file. See docs/configuration.md."
    )

    optFlags = [[spec.name, spec.short, spec.help] for spec in OPTIONS if spec.kind == "flag"]
    optParameters = [
        [spec.name, spec.short, None, spec.help]
        for spec in OPTIONS
        if spec.kind not in ("flag", "list", "paths")
    ]
    compData = usage.Completions(
        optActions={
            "data-dir": usage.CompleteDirs(descr="data directory"),
            "drive": usage.CompleteDirs(descr="drive directory"),
            "config": usage.CompleteFiles(descr="TOML config file", globPattern="*.toml"),
            "credentials": usage.CompleteFiles(descr="TOML file of accounts and keys", globPattern="*.toml"),
        },
        multiUse=[spec.name for spec in OPTIONS if spec.repeatable],
    )

    settings: Settings

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        """
        @param environ: the environment to read C{FASTERSTORE_*} from;
            L{os.environ} when C{None} (tests pass their own).
        """
        super().__init__()
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        for spec in OPTIONS:
            if spec.repeatable:
                self[spec.name] = []

    def opt_listen(self, endpoint: str) -> None:
        """Endpoint string to serve S3 on (tcp:9000, ssl:9443:privateKey=key.pem:certKey=cert.pem, systemd:domain=INET:index=0, unix:/run/s3.sock); repeatable. [default: tcp:9000:interface=127.0.0.1]"""
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def opt_domain(self, domain: str) -> None:
        """Base domain for virtual-hosted-style requests (BUCKET.DOMAIN); repeatable."""
        self["domain"].append(domain)

    def opt_drive(self, path: str) -> None:
        """Existing directory to store object data on; repeatable, but one drive only until erasure coding lands. [default: the data dir]"""
        self["drive"].append(path)

    def postOptions(self) -> None:
        """Merge command line, environment and config file into L{Settings}."""
        commandLine: Dict[str, Any] = {spec.name: self.get(spec.name) for spec in OPTIONS}
        try:
            self.settings = resolveSettings(commandLine, self._environ)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        """Parse, keeping the command line: workers of C{--workers} get the same."""
        self.arguments: List[str] = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def parseArgs(self, *args: str) -> None:
        """FasterStore takes options only; a stray word is most likely a typo."""
        if args:
            raise usage.UsageError(f"unexpected argument(s): {' '.join(args)}")


def makeService(config: Options) -> IService:
    """
    The FasterStore service tree for C{twistd}: a C{MultiService} of the
    listeners, the engines and the periodic services, built from
    C{config.settings}.  Imported lazily so that C{twistd --help} stays fast
    and light.
    """
    from fasterstore.files import DataDirectoryLocked
    from fasterstore.service import makeStoreService

    try:
        service: IService = makeStoreService(config.settings, getattr(config, "arguments", ()))
    except DataDirectoryLocked as e:
        # An operator's mistake, not a bug: one line, exit status 1.
        raise SystemExit(f"fasterstore: {e}") from None
    return service


__all__: List[str] = ["Options", "makeService"]
