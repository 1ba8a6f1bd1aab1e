"""
The benchmark floor: the cheapest twisted.web server that answers the
requests the FasterStore benchmark sends.

One leaf ``Resource`` answers every path:

- ``GET`` returns a fixed 4 KiB body (``--body-size N`` for another size:
  ``benchmarks/suite.py`` runs one floor per object size);
- ``HEAD`` returns the same headers (``Content-Length: 4096``, or N) and no
  body;
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
ETAG = b'"bare-floor-etag"'


def body_of(size: int) -> bytes:
    """
    The fixed GET body of ``size`` bytes.
    """
    return (b"fasterstore-bare-floor-4KiB-body\n" * (size // 32 + 1))[:size]


BODY = body_of(BODY_SIZE)


def build_site(access_log: bool = False, body_size: int = BODY_SIZE):  # type: ignore[no-untyped-def]
    """
    Build the floor ``Site``: one leaf resource, access log optional, GET
    bodies of ``body_size`` bytes.
    """
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    body = BODY if body_size == BODY_SIZE else body_of(body_size)
    length = b"%d" % (body_size,)

    class Floor(Resource):
        """
        A leaf answering GET, HEAD and PUT at every path.
        """

        isLeaf = True

        def _headers(self, request) -> None:  # type: ignore[no-untyped-def]
            request.setHeader(b"content-type", b"application/octet-stream")
            request.setHeader(b"etag", ETAG)

        def render_GET(self, request) -> bytes:  # type: ignore[no-untyped-def]
            """Fixed body (4 KiB by default)."""
            self._headers(request)
            return body

        def render_HEAD(self, request) -> bytes:  # type: ignore[no-untyped-def]
            """The GET headers, no body (twisted keeps our Content-Length)."""
            self._headers(request)
            request.setHeader(b"content-length", length)
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
    parser.add_argument("--body-size", type=int, default=BODY_SIZE,
                        help="bytes of the GET body and HEAD Content-Length (%d)" % (BODY_SIZE,))
    options = parser.parse_args(argv)
    if options.body_size < 0:
        parser.error("--body-size must not be negative")

    from twisted.internet import reactor

    port = reactor.listenTCP(
        options.port, build_site(options.access_log, options.body_size), interface=options.interface
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
