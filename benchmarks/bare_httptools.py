"""
A second floor: the answers of ``bare_server.py`` (fixed 4 KiB GET, the same
headers on HEAD, PUT body read and discarded) from a Twisted ``Protocol`` on
httptools, the C HTTP/1.1 parser (llhttp) uvicorn uses, instead of
twisted.web's ``HTTPChannel`` and ``Request``.

What it measures: how much of twisted.web's per-request cost a leaner HTTP
layer on the same reactor takes away, i.e. whether a standalone listener on
such a protocol is worth a second code path beside the twisted.web
``Resource`` (issue 10). Same reactor, same kernel work, no access log.

    python benchmarks/bare_httptools.py --port 0

prints ``LISTENING <port>`` and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from bare_server import BODY, BODY_SIZE, ETAG

DATE_REFRESH = 1.0


def build_factory(reactor: Any) -> Any:
    """The protocol factory: one parser per connection, keep-alive, pipelining."""
    import httptools
    from twisted.internet.protocol import Factory, Protocol
    from twisted.web.http import datetimeToString

    date = [datetimeToString()]

    def refresh() -> None:
        date[0] = datetimeToString()
        reactor.callLater(DATE_REFRESH, refresh)

    refresh()

    class Floor(Protocol):
        """HTTP/1.1 on httptools: the three answers, nothing else."""

        def connectionMade(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.headers: List[Any] = []

        def dataReceived(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.loseConnection()

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            pass  # read and discarded

        def on_message_complete(self) -> None:
            method = self.parser.get_method()
            head = b"HTTP/1.1 200 OK\r\nServer: floor\r\nDate: " + date[0]
            if method == b"GET":
                self.transport.write(
                    head + b"\r\nContent-Type: application/octet-stream\r\nETag: " + ETAG
                    + b"\r\nContent-Length: %d\r\n\r\n" % BODY_SIZE + BODY
                )
            elif method == b"HEAD":
                self.transport.write(
                    head + b"\r\nContent-Type: application/octet-stream\r\nETag: " + ETAG
                    + b"\r\nContent-Length: %d\r\n\r\n" % BODY_SIZE
                )
            else:
                self.transport.write(head + b"\r\nETag: " + ETAG + b"\r\nContent-Length: 0\r\n\r\n")
            self.url = b""
            self.headers = []
            if not self.parser.should_keep_alive():
                self.transport.loseConnection()

    return Factory.forProtocol(Floor)


def main(argv: list[str] | None = None) -> int:
    """Parse options, listen on loopback, run the reactor until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--interface", default="127.0.0.1")
    options = parser.parse_args(argv)

    from twisted.internet import reactor

    port = reactor.listenTCP(options.port, build_factory(reactor), interface=options.interface)  # type: ignore[attr-defined]
    sys.stdout.write("LISTENING %d\n" % (port.getHost().port,))
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
