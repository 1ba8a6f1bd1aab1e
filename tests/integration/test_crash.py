"""
kill -9 durability: 16 boto3 writer threads PUT and DELETE while the server
is SIGKILLed at a random moment; after a restart on the same data directory
every acknowledged write is there byte for byte, no acknowledged DELETE comes
back, nothing is half-visible, and the server starts clean.  Repeated over
several rounds on one data directory, then a graceful SIGTERM round.

The model: each writer owns its keys, so operations on a key are sequential
and at most one is in flight (unacknowledged) when the server dies.  After
the restart a key must hold its last acknowledged state, or the result of
its in-flight operation; nothing else.

Set FASTERSTORE_CRASH_SEED to replay a run.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from typing import Dict, List, Optional, Tuple

import attrs
from botocore.exceptions import ClientError

from tests.integration.harness import Server, ServerTestCase

WRITERS = 16
KEYS_PER_WRITER = 6
ROUNDS = int(os.environ.get("FASTERSTORE_CRASH_ROUNDS", "6"))
MAX_SIZE = 256 * 1024

ABSENT = None  # the state of a key with no object


@attrs.define
class KeyState:
    """
    What we know about one key.

    @ivar acked: the body of the last acknowledged state (None: absent).
    @ivar inflight: an unacknowledged operation's outcome: ("put", body) or
        ("delete", None); None when nothing is in flight.
    @ivar history: recent operations, for failure messages.
    """

    acked: Optional[bytes] = None
    inflight: Optional[Tuple[str, Optional[bytes]]] = None
    history: List[str] = attrs.Factory(list)

    def acceptable(self) -> List[Optional[bytes]]:
        """The states the key may legitimately be found in after a crash."""
        states = [self.acked]
        if self.inflight is not None:
            states.append(self.inflight[1])
        return states


def describe(body: Optional[bytes]) -> str:
    if body is None:
        return "absent"
    return f"{len(body)}B md5={hashlib.md5(body).hexdigest()[:8]}"


class CrashTests(ServerTestCase):
    """SIGKILL at random moments under concurrent writes."""

    def test_killNineRounds(self) -> None:
        """Acknowledged writes survive kill -9, round after round on one data dir."""
        seed = int(os.environ.get("FASTERSTORE_CRASH_SEED", random.randrange(1 << 30)))
        print(f"\ncrash test seed: FASTERSTORE_CRASH_SEED={seed}")
        rng = random.Random(seed)
        server = self.privateServer()
        self.server = server
        bucket = self.bucketName("crash")
        server.client().create_bucket(Bucket=bucket)
        keys = [f"w{w:02d}/k{k}" for w in range(WRITERS) for k in range(KEYS_PER_WRITER)]
        model: Dict[str, KeyState] = {key: KeyState() for key in keys}
        started = time.monotonic()
        totals = {"puts": 0, "deletes": 0, "inflight": 0}
        for round in range(ROUNDS):
            # Kill after a random number of acknowledged operations (the
            # first round early), or at a deadline if the server is slow.
            target = rng.randrange(1, 40) if round == 0 else rng.randrange(40, 600)
            counts: Dict[str, int] = {}
            duration = self._writeAndKill(server, bucket, model, rng.randrange(1 << 30), target, counts)
            for name in ("puts", "deletes", "inflight"):
                totals[name] += counts[name]
            startup = self._restartClean(server)
            self._verify(server, bucket, model, f"round {round} (killed after {duration:.2f}s)")
            print(
                f"round {round}: killed after {duration:.2f}s (target {target} ops), {counts['puts']} PUTs and "
                f"{counts['deletes']} DELETEs acknowledged, {counts['inflight']} in flight, "
                f"ready {startup:.2f}s after restart"
            )
        # A graceful stop loses nothing either, and exits cleanly.
        # (twistd re-raises the SIGTERM after a clean shutdown, so -15 is normal.)
        self.assertIn(server.stop(), (0, -signal.SIGTERM), server.tail())
        self.assertIn("Main loop terminated", server.logSinceStart(), server.tail())
        self.assertNotIn("Traceback", server.logSinceStart(), server.tail())
        self._restartClean(server)
        self._verify(server, bucket, model, "after SIGTERM")
        self.assertGreater(totals["puts"], 0, "no write was ever acknowledged: the test tested nothing")
        print(f"crash test: {totals} in {time.monotonic() - started:.1f}s")

    def _writeAndKill(
        self,
        server: Server,
        bucket: str,
        model: Dict[str, KeyState],
        seed: int,
        target: int,
        counts: Dict[str, int],
        deadline: float = 3.0,
    ) -> float:
        """
        Run the writers until C{target} operations are acknowledged (or
        C{deadline} seconds pass), then SIGKILL the server.

        @param counts: filled with acknowledged puts/deletes and in-flight ops.
        @return: seconds from start to kill.
        """
        s3 = server.client(max_pool_connections=WRITERS * 2, connect_timeout=2, read_timeout=20)
        killed = threading.Event()
        errors: List[str] = []
        counts.update({"puts": 0, "deletes": 0, "inflight": 0})
        reached = threading.Event()
        lock = threading.Lock()
        pool = [os.urandom(random.Random(seed + i).randrange(1, MAX_SIZE)) for i in range(6)]

        def writer(index: int) -> None:
            rng = random.Random(seed * 31 + index)
            mine = [k for k in model if k.startswith(f"w{index:02d}/")]
            seq = 0
            while True:
                key = rng.choice(mine)
                state = model[key]
                seq += 1
                if rng.random() < 0.3:
                    op: Tuple[str, Optional[bytes]] = ("delete", None)
                else:
                    if rng.random() < 0.15:
                        body = rng.choice(pool)  # identical content under several keys
                    else:
                        size = 0 if rng.random() < 0.05 else rng.randrange(1, MAX_SIZE + 1)
                        label = f"{key}#{seed}#{seq}|".encode()
                        body = label + os.urandom(size - len(label)) if size > len(label) else os.urandom(size)
                    op = ("put", body)
                state.inflight = op
                try:
                    if op[0] == "put":
                        s3.put_object(Bucket=bucket, Key=key, Body=op[1])
                    else:
                        s3.delete_object(Bucket=bucket, Key=key)
                except Exception as e:  # noqa: B902 - every failure ends this writer
                    if not killed.is_set():
                        detail = e.response.get("Error") if isinstance(e, ClientError) else repr(e)
                        with lock:
                            errors.append(f"{key} {op[0]} before the kill: {detail}")
                    with lock:
                        counts["inflight"] += 1
                    state.history.append(f"{op[0]} {describe(op[1])} in flight")
                    return
                state.acked = op[1]
                state.inflight = None
                state.history.append(f"{op[0]} {describe(op[1])} acked")
                del state.history[:-6]
                with lock:
                    counts["puts" if op[0] == "put" else "deletes"] += 1
                    if counts["puts"] + counts["deletes"] >= target:
                        reached.set()

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
        for t in threads:
            t.start()
        began = time.monotonic()
        reached.wait(deadline)
        killed.set()
        server.kill()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive(), "a writer hung after the server was killed")
        self.assertEqual(errors, [], "operations failed while the server was up")
        return time.monotonic() - began

    def _restartClean(self, server: Server) -> float:
        """Restart on the same data dir; the log since start shows no error."""
        began = time.monotonic()
        server.start()
        took = time.monotonic() - began
        log = server.logSinceStart()
        for marker in ("Traceback", "Unhandled Error", "CRITICAL"):
            self.assertNotIn(marker, log, f"restart logged {marker!r}:\n{server.tail(80)}")
        return took

    def _verify(self, server: Server, bucket: str, model: Dict[str, KeyState], when: str) -> None:
        """Every key is in an acceptable state; listing agrees; the model adopts what is found."""
        s3 = server.client(max_pool_connections=16)
        problems: List[str] = []
        found: Dict[str, Optional[bytes]] = {}
        for key, state in sorted(model.items()):
            try:
                response = s3.get_object(Bucket=bucket, Key=key)
                body: Optional[bytes] = response["Body"].read()
                if response["ContentLength"] != len(body):
                    problems.append(f"{key}: Content-Length {response['ContentLength']} but {len(body)} bytes")
                if response["ETag"] != '"' + hashlib.md5(body).hexdigest() + '"':
                    problems.append(f"{key}: ETag {response['ETag']} is not the MD5 of the body")
            except ClientError as e:
                if e.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
                    problems.append(f"{key}: GET failed: {e.response.get('Error')}")
                    continue
                body = None
            found[key] = body
            if body not in state.acceptable():
                problems.append(
                    f"{key}: found {describe(body)}, acceptable: "
                    f"{[describe(b) for b in state.acceptable()]}; history: {state.history}"
                )
        listed: Dict[str, int] = {}
        token = None
        while True:
            page = s3.list_objects_v2(Bucket=bucket, **({"ContinuationToken": token} if token else {}))
            listed.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
            if not page["IsTruncated"]:
                break
            token = page["NextContinuationToken"]
        present = {k: len(v) for k, v in found.items() if v is not None}
        if listed != present:
            problems.append(
                f"listing disagrees with GETs: only listed {sorted(set(listed) - set(present))}, "
                f"only readable {sorted(set(present) - set(listed))}, "
                f"size differs {[k for k in listed if k in present and listed[k] != present[k]]}"
            )
        self.assertEqual(problems, [], f"{when}:\n" + "\n".join(problems[:30]))
        for key, state in model.items():
            state.acked = found[key]
            state.inflight = None
