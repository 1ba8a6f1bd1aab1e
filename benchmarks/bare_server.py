"""
The benchmark floor: the cheapest twisted.web server that answers the
requests the FasterStore benchmark sends.

One leaf ``Resource`` answers every path:

- ``GET`` returns a fixed 4 KiB body;
- ``HEAD`` returns the same headers (``Content-Length: 4096``) and no body;
- ``PUT`` reads the body (twisted.web has already buffered it before
  ``render`` runs), discards it and returns ``200``.

No signature is checked, nothing touches the disk, and the access log is off
(``--access-log`` turns it on), so whatever FasterStore spends beyond this
process is the cost of FasterStore itself. It uses the same reactor
(the platform default, epoll on Linux) as ``twistd``.

Run it on loopback as its own process; ``benchmarks/run.py`` does::

    python benchmarks/bare_server.py --port 0

It prints ``LISTENING <port>`` on stdout once the port is bound, and stops on
SIGTERM or SIGINT. There is no test module: ``benchmarks/run.py --bare-only
--quick`` exercises it.
"""

from __future__ import annotations

import argparse
import sys

BODY_SIZE = 4096
BODY = (b"fasterstore-bare-floor-4KiB-body\n" * (BODY_SIZE // 32 + 1))[:BODY_SIZE]
ETAG = b'"bare-floor-etag"'


def build_site(access_log: bool = False):  # type: ignore[no-untyped-def]
    """
    Build the floor ``Site``: one leaf resource, access log optional.
    """
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    class Floor(Resource):
        """
        A leaf answering GET, HEAD and PUT at every path.
        """

        isLeaf = True

        def _headers(self, request) -> None:  # type: ignore[no-untyped-def]
            request.setHeader(b"content-type", b"application/octet-stream")
            request.setHeader(b"etag", ETAG)

        def render_GET(self, request) -> bytes:  # type: ignore[no-untyped-def]
            """Fixed 4 KiB body."""
            self._headers(request)
            return BODY

        def render_HEAD(self, request) -> bytes:  # type: ignore[no-untyped-def]
            """The GET headers, no body (twisted keeps our Content-Length)."""
            self._headers(request)
            request.setHeader(b"content-length", b"%d" % (BODY_SIZE,))
            return b""

        def render_PUT(self, request) -> bytes:  # type: ignore[no-untyped-def]
            """Read and discard the body, answer 200 with an ETag."""
            request.content.seek(0)
            request.content.read()
            request.setHeader(b"etag", ETAG)
            return b""

    site = Site(Floor())
    if not access_log:
        site.log = lambda request: None  # type: ignore[method-assign]
    return site


def main(argv: list[str] | None = None) -> int:
    """
    Parse options, listen on loopback, run the reactor until SIGTERM.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--access-log", action="store_true",
                        help="log every request like a default Site does")
    options = parser.parse_args(argv)

    from twisted.internet import reactor

    port = reactor.listenTCP(
        options.port, build_site(options.access_log), interface=options.interface
    )
    if options.access_log:
        from twisted.python import log

        log.startLogging(sys.stderr)
    sys.stdout.write("LISTENING %d\n" % (port.getHost().port,))  # type: ignore[attr-defined]
    sys.stdout.flush()
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
