"""
C{--workers 2} on a real server: both workers serve, every worker sees what
another acknowledged, conditional PUTs racing on two workers have one
winner, metrics add up across workers, a dead worker is restarted, SIGHUP
reaches every worker and SIGTERM stops them all.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import urllib.request
from typing import List

from botocore.exceptions import ClientError

from tests.integration.harness import Server, ServerTestCase, waitFor


def children(pid: int) -> List[int]:
    """The processes whose parent is C{pid}."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(name))
    return sorted(found)


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(f"{server.endpoint}/_fasterstore/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " "))


class WorkersTests(ServerTestCase):
    def setUp(self) -> None:
        self.server = self.privateServer(extraArgs=["--workers", "2"])
        waitFor("two workers", lambda: len(children(self.server.pid)) == 2, 30)
        waitFor("every worker ready", self.allReady, 30)

    def allReady(self) -> bool:
        for _ in range(8):  # fresh connections land on either worker
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
            try:
                connection.request("GET", "/_fasterstore/health/ready")
                if connection.getresponse().status != 200:
                    return False
            except OSError:
                return False
            finally:
                connection.close()
        return True

    def fresh(self):  # type: ignore[no-untyped-def]
        """A client whose every request opens a new connection: any worker may answer."""
        return self.server.client(max_pool_connections=1, tcp_keepalive=False)

    def test_readAfterWriteAcrossWorkers(self) -> None:
        """PUT, GET, LIST and DELETE, each on a new connection: always consistent, and both workers served."""
        workers = children(self.server.pid)
        before = [cpuSeconds(pid) for pid in workers]
        bucket = self.bucketName()
        self.server.client().create_bucket(Bucket=bucket)
        for i in range(30):
            key = f"k{i:03d}"
            body = os.urandom(1000 + i)
            s3 = self.fresh()
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            s3 = self.fresh()
            self.assertEqual(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), body, key)
            listed = [o["Key"] for o in self.fresh().list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]]
            self.assertEqual(listed, [key])
            if i % 3 == 0:
                self.fresh().delete_object(Bucket=bucket, Key=key)
                with self.assertRaises(ClientError) as e:
                    self.fresh().head_object(Bucket=bucket, Key=key)
                self.assertEqual(e.exception.response["Error"]["Code"], "404")
        after = [cpuSeconds(pid) for pid in workers]
        self.assertTrue(all(b > a for a, b in zip(before, after)), (before, after))
        # The node's metrics, from whichever worker answers: every request
        # counted once (PUT, GET, LIST each time, DELETE and HEAD every
        # third time, and the CreateBucket).
        self.assertEqual(metric(self.server, "fasterstore_requests_total"), 30 * 3 + 10 * 2 + 1)

    def test_conditionalRace(self) -> None:
        """If-None-Match: * PUTs of one key racing on many connections: exactly one wins."""
        bucket = self.bucketName()
        self.server.client().create_bucket(Bucket=bucket)
        for round in range(3):
            key = f"race{round}"
            outcomes: List[str] = []
            lock = threading.Lock()

            def put(n: int) -> None:
                try:
                    self.fresh().put_object(Bucket=bucket, Key=key, Body=b"%d" % n, IfNoneMatch="*")
                    result = "won"
                except ClientError as e:
                    result = e.response["Error"]["Code"]
                with lock:
                    outcomes.append(result)

            threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(outcomes.count("won"), 1, outcomes)
            self.assertEqual(set(outcomes) - {"won"}, {"PreconditionFailed"}, outcomes)

    def test_deadWorkerRestarted(self) -> None:
        """A worker killed with SIGKILL is replaced; the node keeps serving and logs it."""
        victim = children(self.server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        waitFor("a new worker", lambda: victim not in children(self.server.pid) and len(children(self.server.pid)) == 2, 30)
        waitFor("every worker ready", self.allReady, 30)
        bucket = self.bucketName()
        self.fresh().create_bucket(Bucket=bucket)
        self.fresh().put_object(Bucket=bucket, Key="k", Body=b"after")
        self.assertEqual(self.fresh().get_object(Bucket=bucket, Key="k")["Body"].read(), b"after")
        self.assertIn(f"pid {victim}) exited", self.server.logSinceStart())
        # kill -9 of the parent takes every worker with it, the restarted one too.
        workers = children(self.server.pid)
        self.server.kill()
        waitFor("the workers to die with the parent", lambda: not any(_alive(pid) for pid in workers), 30)

    def test_orphanAtStartExits(self) -> None:
        """A worker whose parent is killed while the worker is still starting does not stay behind."""
        victim = children(self.server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        waitFor("a new worker", lambda: victim not in children(self.server.pid) and len(children(self.server.pid)) == 2, 30)
        starting = children(self.server.pid)
        self.server.kill()  # the new worker is most likely still importing
        waitFor("no worker left", lambda: not any(_alive(pid) for pid in starting), 30)

    def test_reloadReachesEveryWorker(self) -> None:
        """SIGHUP to the parent: every worker serves a key added to the credentials file."""
        self.server.stop()
        path = os.path.join(self.server.base, "credentials.toml")
        with open(path, "w") as f:
            f.write('[accounts.alice]\nkeys = [{ access-key = "AKALICE0001", secret-key = "alice-one" }]\n')
        os.chmod(path, 0o600)
        self.server.extraArgs += ["--credentials", path]
        self.server.start()
        waitFor("two workers", lambda: len(children(self.server.pid)) == 2, 30)
        waitFor("every worker ready", self.allReady, 30)
        with open(path, "a") as f:
            f.write('[accounts.bob]\nkeys = [{ access-key = "AKBOB0001", secret-key = "bob-one" }]\n')
        os.kill(self.server.pid, signal.SIGHUP)

        def bobEverywhere() -> bool:
            for _ in range(10):  # ten new connections, spread over both workers
                bob = self.server.client(max_pool_connections=1)
                bob._request_signer._credentials.access_key = "AKBOB0001"  # type: ignore[attr-defined]
                bob._request_signer._credentials.secret_key = "bob-one"  # type: ignore[attr-defined]
                try:
                    bob.list_buckets()
                except ClientError:
                    return False
            return True

        waitFor("bob's key in every worker", bobEverywhere, 30)
        self.assertIn(self.server.stop(), (0, -signal.SIGTERM))

    def test_stop(self) -> None:
        """SIGTERM to the parent stops every worker, and the parent exits cleanly."""
        workers = children(self.server.pid)
        self.assertIn(self.server.stop(), (0, -signal.SIGTERM))  # twistd ends by its own SIGTERM
        waitFor("the workers to exit", lambda: not any(_alive(pid) for pid in workers), 30)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
