"""
CPU per request, measured inside one process: the real server (engines,
S3 resource, site and channel, as ``FasterStore.create`` builds them) fed
whole presigned requests through an in-memory transport, the process's own
CPU time counted around N requests, best of R rounds.

No sockets, no kernel, no scheduling: the figure moves only with the code,
so it is the one to compare before and after a change to the request path
on a machine that is not quiet (a wrk run's throughput moves with whatever
else runs on the box).  It is not a throughput: ``profile_server.py`` and
``run.py`` measure those, over loopback, beside the floors.

    .venv/bin/python benchmarks/inprocess.py [--operation GET,HEAD] [--requests 5000] [--rounds 5] \
        [--http-parser twisted|httptools]

GET and HEAD read a seeded set of 4 KiB objects (one request answers
within its own ``dataReceived``: metadata reads and cached segment reads
are on the reactor thread); PUT writes fresh keys with fsync off (the CPU
of a PUT, not the disk's latency), each request waited for.  Every answer's
status is checked; a non-2xx stops the benchmark.  ``--http-parser``
picks the site's HTTP/1.1 channel, as the server option of that name does.
"""

from __future__ import annotations

import argparse
import cProfile
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from typing import Any, List, Optional

import httptools
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.python.filepath import FilePath

from fasterstore.auth.identity import Credentials
from fasterstore.service import FasterStore

HOST = "127.0.0.1:9000"
BUCKET = "bench"
SIZE = 4096


class Responses:
    """Counts complete responses in what the server wrote, and their statuses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.complete = 0
        self.bad: List[int] = []

    def on_message_complete(self) -> None:
        self.complete += 1
        status = self.parser.get_status_code()
        if not 200 <= status < 300:
            self.bad.append(status)

    def feed(self, data: bytes) -> None:
        self.parser.feed_data(data)


class WatchedTransport(StringTransport):
    """A memory transport that tells whoever waits that the server wrote."""

    waiter: Optional["defer.Deferred[None]"] = None
    reactor: Any = None

    def write(self, data: bytes) -> None:
        super().write(data)
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            # Not from inside the server's own write: the waiter sends more.
            self.reactor.callLater(0, waiter.callback, None)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))


class Connection:
    """One keep-alive connection to the site, in memory."""

    def __init__(self, site: Any, head: bool = False) -> None:
        self.transport = WatchedTransport()
        self.transport.reactor = site.reactor
        self.channel = site.buildProtocol(None)
        self.channel.makeConnection(self.transport)
        self.responses = Responses()
        # A HEAD answer carries Content-Length but no body, which a response
        # parser cannot know: HEAD answers are counted by their header blocks.
        self.head = head

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def drain(self) -> None:
        """Count what the server wrote so far."""
        data = self.transport.value()
        if data:
            self.transport.clear()
            if self.head:
                # One response per header block (no bodies follow).
                self.responses.complete += data.count(b"\r\n\r\n")
                for line in data.split(b"\r\n"):
                    if line.startswith(b"HTTP/1.1 ") and not line.startswith(b"HTTP/1.1 2"):
                        self.responses.bad.append(int(line.split()[1]))
            else:
                self.responses.feed(data)


def requestBytes(method: str, url: str, body: bytes = b"") -> bytes:
    """The wire form of a presigned request."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, HOST)
    if method == "PUT":
        head += "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n" % len(body)
    return head.encode("latin-1") + b"\r\n" + body


async def answered(reactor: Any, conn: "Connection", count: int, what: str, timeout: float = 60.0) -> None:
    """Let the reactor run until C{conn} has C{count} complete answers, with a deadline."""
    conn.drain()
    while conn.responses.complete < count:
        waiter: "defer.Deferred[None]" = defer.Deferred()
        conn.transport.waiter = waiter
        waiter.addTimeout(timeout, reactor)
        try:
            await waiter
        except defer.TimeoutError:
            raise RuntimeError("timed out waiting for " + what) from None
        conn.drain()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    import botocore.session
    from botocore.config import Config

    workdir = FilePath(tempfile.mkdtemp(prefix="fsinprocess-"))
    access, secret = "AK" + secrets.token_hex(8), secrets.token_hex(20)
    store = FasterStore.create(reactor, workdir.child("data"), Credentials(access, secret, "bench", "bench"), fsync=False,
                               httpParser=args.http_parser)
    store.service.startService()
    try:
        assert store.storeService is not None
        await store.storeService.whenOpen()
        site = store.site()
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url="http://" + HOST, region_name="us-east-1",
            aws_access_key_id=access, aws_secret_access_key=secret,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

        def presign(method: str, key: str) -> str:
            op = {"PUT": "put_object", "GET": "get_object", "HEAD": "head_object"}[method]
            return str(client.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600))

        def signedCreateBucket() -> bytes:
            return requestBytes("PUT", str(client.generate_presigned_url(
                "create_bucket", Params={"Bucket": BUCKET}, ExpiresIn=3600)))

        setup = Connection(site)
        setup.send(signedCreateBucket())
        await answered(reactor, setup, 1, "CreateBucket")
        keys = ["r/%07d" % i for i in range(args.keys)]
        for i, key in enumerate(keys):
            setup.send(requestBytes("PUT", presign("PUT", key), secrets.token_bytes(SIZE)))
            await answered(reactor, setup, i + 2, "a seed PUT")
        if setup.responses.bad:
            raise RuntimeError("seeding failed: %s" % (setup.responses.bad,))

        for operation in args.operations:
            if operation == "PUT":
                fresh = iter(range(10**9))
                requests = None
            else:
                requests = [requestBytes(operation, presign(operation, key)) for key in keys]
            perRequest: List[float] = []
            for _ in range(args.rounds):
                conn = Connection(site, head=operation == "HEAD")
                if requests is None:
                    batch = [requestBytes("PUT", presign("PUT", "w/%09d" % next(fresh)), secrets.token_bytes(SIZE))
                             for _ in range(args.requests)]
                else:
                    batch = [requests[i % len(requests)] for i in range(args.requests)]
                profiler = cProfile.Profile() if args.cprofile else None
                if profiler is not None:
                    profiler.enable()
                started = time.process_time()
                if operation == "PUT":
                    for n, data in enumerate(batch, 1):
                        conn.send(data)
                        await answered(reactor, conn, n, "a PUT")
                else:
                    for data in batch:
                        conn.send(data)
                        conn.drain()
                elapsed = time.process_time() - started
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats("%s.%s" % (args.cprofile, operation))
                if conn.responses.complete != args.requests or conn.responses.bad:
                    raise RuntimeError("%s: %d of %d answered, non-2xx %s" % (
                        operation, conn.responses.complete, args.requests, conn.responses.bad[:5]))
                perRequest.append(elapsed / args.requests * 1e6)
                conn.channel.connectionLost(None)
            print("%-5s %6.1f us/request CPU (best of %d rounds of %d; median %.1f, worst %.1f; %s parser)" % (
                operation, min(perRequest), args.rounds, args.requests, statistics.median(perRequest),
                max(perRequest), args.http_parser))
    finally:
        await store.service.stopService()
        shutil.rmtree(workdir.path, ignore_errors=True)


def parseArgs(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operation", default="GET,HEAD,PUT", help="comma list of GET, HEAD, PUT")
    parser.add_argument("--requests", type=int, default=5000, help="requests per round (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is reported (5)")
    parser.add_argument("--cprofile", default=None, metavar="PREFIX",
                        help="profile the last round of each operation into PREFIX.OPERATION (cProfile)")
    parser.add_argument("--keys", type=int, default=200, help="objects seeded for GET and HEAD (200)")
    parser.add_argument("--http-parser", default="twisted", choices=("twisted", "httptools"),
                        help="the site's HTTP/1.1 parser, as the server's --http-parser (twisted)")
    args = parser.parse_args(argv)
    args.operations = [op.strip().upper() for op in args.operation.split(",") if op.strip()]
    return args


if __name__ == "__main__":
    arguments = parseArgs(sys.argv[1:])
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
