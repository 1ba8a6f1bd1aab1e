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

The same on a versioned bucket, with delete markers and deletes by
version id: every acknowledged version and marker is listed and reads back
after the restart, no acknowledged removal comes back.

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
from typing import Any, Dict, List, Optional, Tuple

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


class CrashCase(ServerTestCase):
    """A private server to kill, a bucket on it, a seeded random source."""

    def begin(self, name: str) -> Tuple[random.Random, Server, str]:
        """The random source (its seed printed, to replay), the server, a new bucket."""
        seed = int(os.environ.get("FASTERSTORE_CRASH_SEED", random.randrange(1 << 30)))
        print(f"\n{name} seed: FASTERSTORE_CRASH_SEED={seed}")
        server = self.privateServer()
        self.server = server
        bucket = self.bucketName(name)
        server.client().create_bucket(Bucket=bucket)
        return random.Random(seed), server, bucket


class CrashTests(CrashCase):
    """SIGKILL at random moments under concurrent writes."""

    def test_killNineRounds(self) -> None:
        """Acknowledged writes survive kill -9, round after round on one data dir."""
        rng, server, bucket = self.begin("crash")
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


@attrs.define
class VersionedKey:
    """
    What we know about one key of a versioned bucket.

    @ivar acked: its versions as acknowledged, newest first: (version id,
        body, or None for a delete marker).
    @ivar inflight: an unacknowledged operation: ("put", body), ("delete",
        None) or ("remove", version id); None when nothing is in flight.
    """

    acked: List[Tuple[str, Optional[bytes]]] = attrs.Factory(list)
    inflight: Optional[Tuple[str, Any]] = None

    def acceptable(self) -> List[List[Tuple[Optional[str], Optional[bytes]]]]:
        """
        The version lists the key may be found with, newest first (an
        in-flight PUT or DELETE's version has an id we never heard: None).
        """
        known: List[Tuple[Optional[str], Optional[bytes]]] = list(self.acked)
        states = [known]
        if self.inflight is not None:
            kind, value = self.inflight
            if kind == "remove":
                states.append([v for v in known if v[0] != value])
            else:
                states.append([(None, value)] + known)
        return states


class VersionedCrashTests(CrashCase):
    """SIGKILL under concurrent PUTs, DELETEs (markers) and deletes by version id on a versioned bucket."""

    def test_killNineKeepsVersions(self) -> None:
        """Every acknowledged version and delete marker survives kill -9, and no acknowledged removal comes back."""
        rng, server, bucket = self.begin("vcrash")
        server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        writers = 8
        model: Dict[str, VersionedKey] = {f"w{w}/k{k}": VersionedKey() for w in range(writers) for k in range(3)}
        acknowledged = 0
        for round in range(3):
            acknowledged += self._writeAndKill(server, bucket, model, writers, rng.randrange(1 << 30),
                                               rng.randrange(20, 300))
            server.start()
            self.assertNotIn("Traceback", server.logSinceStart(), server.tail(80))
            self._verify(server, bucket, model, f"round {round}")
        self.assertGreater(acknowledged, 0, "nothing was acknowledged: the test tested nothing")

    def _writeAndKill(self, server: Server, bucket: str, model: Dict[str, VersionedKey], writers: int,
                      seed: int, target: int) -> int:
        """Run the writers until C{target} operations are acknowledged (or 3 s pass), then SIGKILL."""
        s3 = server.client(max_pool_connections=writers * 2, connect_timeout=2, read_timeout=20)
        killed = threading.Event()
        reached = threading.Event()
        lock = threading.Lock()
        errors: List[str] = []
        done = [0]

        def writer(index: int) -> None:
            rng = random.Random(seed * 31 + index)
            mine = [k for k in model if k.startswith(f"w{index}/")]
            while True:
                key = rng.choice(mine)
                state = model[key]
                roll = rng.random()
                op: Tuple[str, Any]
                if roll < 0.2 and state.acked:
                    op = ("remove", rng.choice(state.acked)[0])
                elif roll < 0.4:
                    op = ("delete", None)
                else:
                    op = ("put", f"{key}#{seed}#{rng.random()}|".encode() + os.urandom(rng.randrange(0, 50_000)))
                state.inflight = op
                try:
                    if op[0] == "put":
                        versionId = s3.put_object(Bucket=bucket, Key=key, Body=op[1])["VersionId"]
                    elif op[0] == "delete":
                        answer = s3.delete_object(Bucket=bucket, Key=key)
                        if not answer.get("DeleteMarker"):
                            raise AssertionError(f"no delete marker: {answer}")
                        versionId = answer["VersionId"]
                    else:
                        s3.delete_object(Bucket=bucket, Key=key, VersionId=op[1])
                except Exception as e:  # noqa: B902 - every failure ends this writer
                    if not killed.is_set():
                        with lock:
                            errors.append(f"{key} {op[0]} before the kill: {e!r}")
                    return
                if op[0] == "remove":
                    state.acked = [v for v in state.acked if v[0] != op[1]]
                else:
                    state.acked.insert(0, (versionId, op[1]))
                state.inflight = None
                with lock:
                    done[0] += 1
                    if done[0] >= target:
                        reached.set()

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
        for t in threads:
            t.start()
        reached.wait(3.0)
        killed.set()
        server.kill()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive(), "a writer hung after the server was killed")
        self.assertEqual(errors, [], "operations failed while the server was up")
        return done[0]

    def _verify(self, server: Server, bucket: str, model: Dict[str, VersionedKey], when: str) -> None:
        """Each key's versions are an acceptable list, each version reads back; the model adopts them."""
        s3 = server.client(max_pool_connections=8)
        found: Dict[str, List[Tuple[str, bool]]] = {}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            entries = [(v["Key"], v["VersionId"], False, v["LastModified"]) for v in page.get("Versions", [])]
            entries += [(m["Key"], m["VersionId"], True, m["LastModified"]) for m in page.get("DeleteMarkers", [])]
            for key, versionId, marker, _ in entries:
                found.setdefault(key, []).append((versionId, marker))
        problems: List[str] = []
        for key, state in sorted(model.items()):
            # botocore splits a page into versions and markers: order by id (newest first).
            listed = sorted(found.get(key, []), key=lambda v: v[0], reverse=True)
            bodies: List[Tuple[Optional[str], Optional[bytes]]] = []
            for versionId, marker in listed:
                if marker:
                    bodies.append((versionId, None))
                else:
                    bodies.append((versionId, s3.get_object(Bucket=bucket, Key=key, VersionId=versionId)["Body"].read()))
            matched = None
            for acceptable in state.acceptable():
                if len(acceptable) == len(bodies) and all(
                    (a[0] is None or a[0] == b[0]) and a[1] == b[1] for a, b in zip(acceptable, bodies)
                ):
                    matched = bodies
            if matched is None:
                problems.append(f"{key}: found {[(v, None if b is None else len(b)) for v, b in bodies]}, "
                                f"acknowledged {[(v, None if b is None else len(b)) for v, b in state.acked]}, "
                                f"in flight {state.inflight and state.inflight[0]}")
                continue
            state.acked = [(v, b) for v, b in matched if v is not None]
            state.inflight = None
        self.assertEqual(problems, [], f"{when}:\n" + "\n".join(problems[:20]))
