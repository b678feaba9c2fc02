#!/usr/bin/env python3
"""Side-by-side benchmark: this registry ("ours") against CNCF Distribution 2.8 ("Distribution").

A script, not a pytest test:

    python tests/perf/bench.py [--quick] [--big-mib N] [--workers N] [--server granian|hypercorn]
                               [--ours-only | --theirs-only] [--json FILE] [--profile]

One run starts both registries (fresh temporary data folders, free loopback ports), runs every
operation against each in turn (ours, then Distribution, operation by operation, so drifting machine
noise hits both alike), prints a table and stops everything it started. All traffic goes to 127.0.0.1.

Clients, chosen so that the client is not the limit:
- big monolithic push and pull: curl reading from / writing to a file in the page cache
  (`curl -T FILE`, streamed, never loaded into memory; `-o /dev/null` for pulls);
- big chunked push: http.client on one kept-alive connection, each 16 MiB chunk sent from an mmap of
  the big file (one sendall per chunk); chunked uploads must follow each response's Location;
- mixed workload: MIXED_CLIENTS threads, three quarters pulling a whole image (1, 10 and 100 MiB
  layers) with curl (the manifest, then config and layers three at a time, as docker does), a quarter
  pushing new images (1 and 10 MiB layers, POST + PUT per blob, then the manifest) with http.client;
- request rates: wrk (2 threads; `apt-get install -y wrk`); the write rates use a Lua script fed by
  pre-built requests, so every manifest and blob pushed is distinct. wrk 4.1 stalls on HEAD (it waits
  for the body a Content-Length announces), so blob HEAD uses a small raw-socket asyncio/uvloop
  generator (64 kept-alive connections, one request in flight on each; it gives the same GET figures
  as wrk). Without wrk (or with --httpx) GET also uses that generator and the writes an asyncio httpx
  generator, which needs much of a core itself and understates write rates.

Before each operation, and before each timed big push or pull, the script writes back every dirty
page (`sync`, not timed): Distribution never fsyncs, and the kernel writing its pushes back some 30 s
later otherwise landed in whatever ran then (the 1 MiB GET rate moved between 1,700 and 3,200).

Each request rate comes with its latency, p50 and p99 of every request sent (wrk's distribution, or
the raw generator's own timings; for the two-request push, of each request; for the mixed workload, of
each whole image pulled or pushed).

Also reported: peak RSS of each server's process tree (VmRSS summed, sampled every 50 ms all run long),
the CPU each server used during each operation next to what the rest of the machine used (the client,
and anything else: this machine is shared, so before each operation the script waits up to
--quiet-wait seconds for it to go idle), and with --profile a py-spy profile of our server
(`pip install py-spy`) during extra, unmeasured runs of the request-rate loads.

Distribution 2.8 does not implement the single-request `POST ?digest=` upload (it answers 202 and opens
a session). Where a registry answers a probe that way, "monolithic push" falls back to the spec's
`POST` + `PUT ?digest=` with the whole body; the table says which form each registry was measured with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import mmap
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
MiB = 1024 * 1024
CHUNK = 16 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
REPO = "bench/app"


# --------------------------------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """An operation the server failed: carries the exact request and response for the report."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def describe(
    method: str,
    url: str,
    headers: dict[str, str],
    body_note: str,
    reply: Reply | None,
    error: str | None = None,
) -> str:
    lines = [f"request:  {method} {url}"]
    lines += [f"          {k}: {v}" for k, v in headers.items()]
    if body_note:
        lines.append(f"          body: {body_note}")
    if reply is not None:
        lines.append(f"response: {reply.status}")
        lines += [f"          {k}: {v}" for k, v in reply.headers.items()]
        text = reply.body[:600].decode("utf-8", "replace")
        if text:
            lines.append(f"          body: {text}")
    if error:
        lines.append(f"error:    {error}")
    return "\n".join(lines)


class Client:
    """One kept-alive HTTP/1.1 connection (stdlib http.client: C-speed sendall for large bodies)."""

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self.port = port
        self.base = f"http://{HOST}:{port}"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout, blocksize=4 * MiB)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def path_of(self, url: str) -> str:
        """A Location (absolute or relative) as a path+query on this server."""
        parsed = urllib.parse.urlsplit(url)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] | None = None,
        body_note: str = "",
    ) -> Reply:
        headers = dict(headers or {})
        path = self.path_of(url)
        if body is None and method in ("POST", "PUT", "PATCH"):
            headers.setdefault("Content-Length", "0")
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                # Retry once only if nothing could have been consumed (a stale kept-alive connection).
                # Servers close kept-alive connections that sat idle (hypercorn after 5 s).
                if (
                    attempt == 0
                    and isinstance(
                        exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                    )
                    and (body is None or isinstance(body, bytes))
                ):
                    continue
                raise BenchError(
                    describe(method, self.base + path, headers, body_note, None, repr(exc))
                ) from exc
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.getheader("connection", "").lower() == "close":
            self.close()
        if expect is not None and reply.status not in expect:
            raise BenchError(describe(method, self.base + path, headers, body_note, reply))
        return reply


# --------------------------------------------------------------------------------------------------
# Process tree sampling: peak RSS and CPU time


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return pids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to max_wait s) until the machine is near idle: this is a shared machine, and anything
    else running skews both registries' figures. Returns the busy cores of the last half second."""
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_cpu()[0]
        time.sleep(0.5)
        busy = (machine_cpu()[0] - before) / 0.5
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        log(f"machine busy ({busy:.2f} cores in use by other processes): waiting before the next run")
        time.sleep(2)


class RssSampler(threading.Thread):
    """Samples VmRSS summed over a process and all its descendants every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.peak_phase = ""
        self.phase = "startup"
        self.phase_peaks: dict[str, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total = sum(_rss_kib(p) for p in _tree(self.pid))
            if total > self.peak_kib:
                self.peak_kib, self.peak_phase = total, self.phase
            if total > self.phase_peaks.get(self.phase, 0):
                self.phase_peaks[self.phase] = total
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


# --------------------------------------------------------------------------------------------------
# The two servers


@dataclass
class Server:
    key: str  # "ours" | "theirs"
    label: str
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    sampler: RssSampler | None = None
    monolithic_form: str = ""  # "POST ?digest=" or "POST + PUT ?digest="
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        # A file, never a pipe: a full pipe would stall the server.
        self.log_fh = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=self.log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.label} exited at startup (code {self.proc.returncode}); log:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                with contextlib.closing(socket.create_connection((HOST, self.port), timeout=1)) as s:
                    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.label} did not answer GET /v2/ within 60 s")

    def set_phase(self, phase: str) -> None:
        if self.sampler:
            self.sampler.phase = phase

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        if self.sampler:
            self.sampler.stop()
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created for it
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if getattr(self, "log_fh", None):
            self.log_fh.close()


def start_ours(work: Path, workers: int | None, engine: str | None) -> Server:
    port = free_port()
    server = Server("ours", "ours", port, work / "ours-data", work / "ours.log")
    argv = [
        sys.executable,
        "-m",
        "registry",
        "serve",
        "--http-addr",
        f"{HOST}:{port}",
        "--data-dir",
        str(server.data_dir),
    ]
    if workers is not None:
        argv += ["--server-workers", str(workers)]
    if engine is not None:
        argv += ["--server-engine", engine]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    server.start(argv, cwd=ROOT, env=env)
    return server


def start_theirs(work: Path, verbose_log: bool, cache: bool) -> Server:
    binary = shutil.which("docker-registry")
    if not binary:
        raise SystemExit("docker-registry (Debian package docker-registry) is not installed")
    port = free_port()
    server = Server("theirs", "Distribution", port, work / "theirs-data", work / "theirs.log")
    config = {
        "version": 0.1,
        "log": {"level": "info"} if verbose_log else {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(server.data_dir)}, "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "secret": "bench-" + os.urandom(8).hex()},
    }
    if cache:
        config["storage"]["cache"] = {"blobdescriptor": "inmemory"}
    config_path = work / "distribution.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start([binary, "serve", str(config_path)])
    return server


# --------------------------------------------------------------------------------------------------
# Big transfers


class BigFile:
    """A file of random bytes whose last 32 bytes are rewritten before each push, so every push sends a
    blob the registry has never seen; the sha256 of the unchanging prefix is computed once."""

    NONCE = 32

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        log(f"writing {size // MiB} MiB of random bytes to {path}")
        prefix = hashlib.sha256()
        with open(path, "wb") as fh:
            left = size - self.NONCE
            while left > 0:
                piece = os.urandom(min(16 * MiB, left))
                prefix.update(piece)
                fh.write(piece)
                left -= len(piece)
            fh.write(b"\0" * self.NONCE)
        self._prefix = prefix
        self.fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, size)
        self.digest = ""
        self.fresh()
        # Warm the page cache so the first run does not read from disk.
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)

    def fresh(self) -> str:
        nonce = os.urandom(self.NONCE)
        os.pwrite(self.fd, nonce, self.size - self.NONCE)
        hasher = self._prefix.copy()
        hasher.update(nonce)
        self.digest = "sha256:" + hasher.hexdigest()
        return self.digest

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def curl(args: list[str], url: str) -> tuple[int, float, int, str]:
    """Run curl; returns (http status, seconds, bytes downloaded, response headers+body for errors)."""
    with tempfile.NamedTemporaryFile() as head, tempfile.NamedTemporaryFile() as out:
        # `curl -T FILE` would append FILE's name to a URL whose path ends in "/": send the path and
        # query as given with --request-target instead.
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        cmd = [
            "curl",
            "-sS",
            "--max-time",
            "900",
            "-D",
            head.name,
            "-w",
            "%{http_code} %{time_total} %{size_download}",
            *args,
            "--request-target",
            target,
            f"{parts.scheme}://{parts.netloc}/",
        ]
        if "-o" not in args:
            cmd[1:1] = ["-o", out.name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"curl failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
        status, seconds, size = proc.stdout.split()
        detail = Path(head.name).read_text(errors="replace")
        body = "" if "-o" in args else Path(out.name).read_bytes()[:600].decode("utf-8", "replace")
        return int(status), float(seconds), int(size), detail + body


def probe_monolithic(server: Server, client: Client) -> None:
    """Does this server complete a blob upload with one `POST ?digest=`?"""
    data = b"probe-" + os.urandom(64)
    digest = sha256_digest(data)
    reply = client.request(
        "POST",
        f"/v2/{REPO}/blobs/uploads/?digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if reply.status == 201:
        server.monolithic_form = "POST ?digest="
    elif reply.status == 202:
        server.monolithic_form = "POST + PUT ?digest="
        server.notes.append(
            "single-request POST ?digest= not supported (202): monolithic measured as "
            "POST + PUT ?digest= with the whole body"
        )
        client.close()
    else:
        raise BenchError(
            describe(
                "POST",
                f"{server.base}/v2/{REPO}/blobs/uploads/?digest={digest}",
                {"Content-Type": "application/octet-stream"},
                f"{len(data)} bytes",
                reply,
            )
        )


def check_blob(client: Client, digest: str, size: int) -> None:
    url = f"/v2/{REPO}/blobs/{digest}"
    reply = client.request("HEAD", url, expect=(200,))
    if reply.header("content-length") != str(size):
        raise BenchError(
            describe(
                "HEAD", client.base + url, {}, "", reply, f"Content-Length is not the pushed size {size}"
            )
        )


def push_monolithic(server: Server, client: Client, big: BigFile) -> float:
    """Seconds are curl's own transfer time (no process start), plus the opening POST where there is one."""
    digest = big.fresh()
    headers = ["-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-T", str(big.path)]
    if server.monolithic_form == "POST ?digest=":
        url = f"{server.base}/v2/{REPO}/blobs/uploads/?digest={digest}"
        status, seconds, _, detail = curl(["-X", "POST", *headers], url)
        if status != 201:
            raise BenchError(f"request:  POST {url} (curl -T {big.size} bytes)\nresponse: {detail}")
    else:
        started = time.perf_counter()
        reply = client.request("POST", f"/v2/{REPO}/blobs/uploads/", expect=(202,))
        opened = time.perf_counter() - started
        location = urllib.parse.urljoin(server.base + "/", reply.header("location") or "")
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={digest}"
        status, seconds, _, detail = curl(["-X", "PUT", *headers], url)
        if status != 201:
            raise BenchError(f"request:  PUT {url} (curl -T {big.size} bytes)\nresponse: {detail}")
        seconds += opened
    check_blob(client, digest, big.size)
    return big.size / seconds / 1e6


def settle_disk() -> None:
    """Write back every dirty page before a timed transfer: what one server left to the kernel to
    write (Distribution never fsyncs; the kernel writes its pushes 30 s later) must not land in the
    next one's measurement. Not timed."""
    os.sync()


def push_chunked(server: Server, client: Client, big: BigFile) -> float:
    digest = big.fresh()
    view = memoryview(big.map)
    started = time.perf_counter()
    reply = client.request("POST", f"/v2/{REPO}/blobs/uploads/", expect=(202,))
    location = reply.header("location")
    offset = 0
    while offset < big.size:
        end = min(offset + CHUNK, big.size)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{end - 1}",
            "Content-Length": str(end - offset),
        }
        reply = client.request(
            "PATCH",
            location,
            body=view[offset:end],
            headers=headers,
            expect=(202,),
            body_note=f"{end - offset} bytes (chunk at offset {offset})",
        )
        location = reply.header("location") or location
        offset = end
    sep = "&" if "?" in location else "?"
    client.request("PUT", f"{location}{sep}digest={digest}", expect=(201,), body_note="empty")
    elapsed = time.perf_counter() - started
    view.release()
    check_blob(client, digest, big.size)
    return big.size / elapsed / 1e6


def pull(server: Server, big: BigFile, digest: str) -> float:
    url = f"{server.base}/v2/{REPO}/blobs/{digest}"
    status, seconds, size, detail = curl(["-o", "/dev/null"], url)
    if status != 200 or size != big.size:
        raise BenchError(
            f"request:  GET {url}\nresponse: status {status}, {size} bytes "
            f"(expected 200 and {big.size} bytes)\n{detail}"
        )
    return size / seconds / 1e6


def verify_pull(server: Server, digest: str, size: int) -> None:
    """One pull through Python that hashes the bytes (not timed)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=600)
    conn.request("GET", f"/v2/{REPO}/blobs/{digest}")
    resp = conn.getresponse()
    hasher, seen = hashlib.sha256(), 0
    while True:
        piece = resp.read(4 * MiB)
        if not piece:
            break
        hasher.update(piece)
        seen += len(piece)
    conn.close()
    if resp.status != 200 or seen != size or "sha256:" + hasher.hexdigest() != digest:
        raise BenchError(
            f"request:  GET {server.base}/v2/{REPO}/blobs/{digest}\n"
            f"response: {resp.status}, {seen} bytes, sha256:{hasher.hexdigest()} "
            f"(expected {size} bytes of {digest})"
        )


# --------------------------------------------------------------------------------------------------
# Mixed workload: whole images pulled while other clients push


MIXED_LAYERS_MIB = (1, 10, 100)  # the pulled image's layers
MIXED_PUSHED_MIB = (1, 10)  # each pushed image's layers, new bytes every time
MIXED_CLIENTS = 8  # a quarter of them pushing
MIXED_REPO = "bench/mixed"


@dataclass
class MixedResult:
    pulls: list[float] = field(default_factory=list)  # seconds each whole-image pull took
    pushes: list[float] = field(default_factory=list)
    pulled_bytes: int = 0
    elapsed: float = 0.0


def push_mixed_image(client: Client, tag: str, layer_mib: tuple[int, ...], seed: bytes) -> int:
    """Push a config, layers of `layer_mib` MiB (bytes made from `seed`, new for each seed) and a manifest
    under `tag`, blob by blob as docker does (POST, then PUT ?digest= with the body); the bytes sent."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
    layers = [hashlib.sha256(seed + bytes([n])).digest() * (n * MiB // 32) for n in layer_mib]
    for blob in (config, *layers):
        push_blob(client, MIXED_REPO, blob)
    manifest = image_body(
        (sha256_digest(config), len(config)), [(sha256_digest(x), len(x)) for x in layers], seed.hex()
    )
    put_manifest(client, MIXED_REPO, tag, manifest)
    return len(config) + sum(map(len, layers)) + len(manifest)


def pull_image(server: Server, tag: str) -> int:
    """Pull a whole image as a client does: its manifest, then its config and layers, three at a time
    (curl -Z, as docker's three concurrent downloads), each to /dev/null; the bytes received."""
    base = f"{server.base}/v2/{MIXED_REPO}"
    got = subprocess.run(
        ["curl", "-sS", "-f", "-H", f"Accept: {ACCEPT}", f"{base}/manifests/{tag}"],
        capture_output=True,
    )
    if got.returncode != 0:
        raise BenchError(
            f"GET {base}/manifests/{tag} (Accept: {ACCEPT}): curl {got.returncode} {got.stderr!r}"
        )
    manifest = json.loads(got.stdout)
    digests = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    cmd = ["curl", "-sS", "-Z", "--parallel-max", "3", "-w", "%{http_code} %{size_download}\\n"]
    for digest in digests:
        cmd += [f"{base}/blobs/{digest}", "-o", "/dev/null"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    answers = [line.split() for line in done.stdout.splitlines()]
    sizes = [manifest["config"]["size"], *(layer["size"] for layer in manifest["layers"])]
    if done.returncode != 0 or sorted(answers) != sorted(["200", str(size)] for size in sizes):
        raise BenchError(
            f"pulling the blobs of {base}/manifests/{tag}: expected 200 and {sizes} bytes, got "
            f"{done.stdout!r} {done.stderr!r}"
        )
    return len(got.stdout) + sum(sizes)


def mixed_load(server: Server, seconds: float) -> MixedResult:
    """MIXED_CLIENTS clients for `seconds`: three quarters pull the whole image "base" again and again,
    a quarter push new images; each client starts no new image after the deadline."""
    result = MixedResult()
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    pushers = MIXED_CLIENTS // 4

    def puller() -> None:
        while time.perf_counter() < deadline and not errors:
            started = time.perf_counter()
            try:
                size = pull_image(server, "base")
            except BenchError as exc:
                errors.append(str(exc))
                return
            with lock:
                result.pulls.append(time.perf_counter() - started)
                result.pulled_bytes += size

    def pusher(number: int) -> None:
        client = Client(server.port)
        count = 0
        try:
            while time.perf_counter() < deadline and not errors:
                started = time.perf_counter()
                seed = f"{number}-{count}-".encode() + os.urandom(8)
                push_mixed_image(client, f"pushed-{number}-{count}", MIXED_PUSHED_MIB, seed)
                count += 1
                with lock:
                    result.pushes.append(time.perf_counter() - started)
        except BenchError as exc:
            errors.append(str(exc))
        finally:
            client.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(pushers)]
    threads += [threading.Thread(target=puller) for _ in range(MIXED_CLIENTS - pushers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - began
    if errors:
        raise BenchError(errors[0])
    return result


# --------------------------------------------------------------------------------------------------
# Request-rate loads


def push_blob(client: Client, repo: str, blob: bytes) -> str:
    """Push one blob with POST + PUT ?digest= (what every registry implements); its digest."""
    digest = sha256_digest(blob)
    reply = client.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
    loc = reply.header("location")
    client.request(
        "PUT",
        f"{loc}{'&' if '?' in loc else '?'}digest={digest}",
        body=blob,
        headers={"Content-Type": "application/octet-stream"},
        expect=(201,),
        body_note=f"{len(blob)} bytes",
    )
    return digest


def make_image(client: Client, repo: str, tag: str) -> tuple[str, str, str]:
    """Push a config and a layer blob and a manifest under `tag`; returns (manifest digest, config, layer)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = os.urandom(4096)
    digests = [push_blob(client, repo, blob) for blob in (config, layer)]
    manifest = manifest_body(digests[0], len(config), digests[1], len(layer), "base")
    put_manifest(client, repo, tag, manifest)
    return sha256_digest(manifest), digests[0], digests[1]


def put_manifest(client: Client, repo: str, tag: str, manifest: bytes) -> None:
    client.request(
        "PUT",
        f"/v2/{repo}/manifests/{tag}",
        body=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        expect=(201,),
        body_note=manifest.decode(),
    )


def manifest_body(config: str, config_size: int, layer: str, layer_size: int, note: str) -> bytes:
    return image_body((config, config_size), [(layer, layer_size)], note)


def image_body(config: tuple[str, int], layers: list[tuple[str, int]], note: str) -> bytes:
    """An OCI image manifest of a config and layers, each (digest, size)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in layers],
            "annotations": {"org.example.bench": note},
        },
        separators=(",", ":"),
    ).encode()


# Requests come from a file of records "METHOD PATH CONTENT-TYPE LENGTH\n<body>". Each wrk thread takes
# every n-th record, so the two threads send disjoint sets. Mode "plain" sends the records as they are;
# mode "postput" pushes each record's body (PATH holds its digest) as POST (empty) + PUT Location&digest=,
# pairing any answered session with the next unsent blob. Only 201 counts as a completed operation.
WRK_DYNAMIC = r"""
local threads = {}
local nextid = 0
function setup(thread)
  thread:set("tid", nextid)
  nextid = nextid + 1
  table.insert(threads, thread)
end

function init(args)
  mode, repo, nthreads = args[2], args[3], tonumber(args[4])
  local fh = assert(io.open(args[1], "rb"))
  local data = fh:read("*a")
  fh:close()
  reqs, pending = {}, {}
  local pos, i = 1, 0
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local method, path, ctype, len = data:sub(pos, nl - 1):match("^(%S+) (%S+) (%S+) (%d+)$")
    len = tonumber(len)
    if i % nthreads == tid then
      reqs[#reqs + 1] = {method, path, ctype, data:sub(nl + 1, nl + len)}
    end
    i = i + 1
    pos = nl + len + 1
  end
  cursor, wraps, ok, bad, other = 0, 0, 0, 0, 0
  first_bad = ""
end

local function next_record()
  cursor = cursor + 1
  if cursor > #reqs then cursor, wraps = 1, wraps + 1 end
  return reqs[cursor]
end

function request()
  if mode == "plain" then
    local r = next_record()
    return wrk.format(r[1], r[2], {["Content-Type"] = r[3]}, r[4])
  end
  local loc = table.remove(pending)
  if loc then
    local r = next_record()
    local sep = loc:find("?", 1, true) and "&" or "?"
    return wrk.format("PUT", loc .. sep .. "digest=" .. r[2],
                      {["Content-Type"] = "application/octet-stream"}, r[4])
  end
  return wrk.format("POST", "/v2/" .. repo .. "/blobs/uploads/", {["Content-Length"] = "0"}, nil)
end

function response(status, headers, body)
  if status == 201 then
    ok = ok + 1
  elseif status == 202 and mode == "postput" then
    local loc
    for k, v in pairs(headers) do
      if k:lower() == "location" then loc = v end
    end
    if loc then
      loc = loc:gsub("^https?://[^/]+", "")
      pending[#pending + 1] = loc
      other = other + 1
    else
      bad = bad + 1
    end
  else
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. tostring(body):sub(1, 300) end
  end
end

local function esc(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function done(summary, latency, requests)
  local ok_, bad_, wraps_, fb = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    ok_ = ok_ + t:get("ok")
    bad_ = bad_ + t:get("bad")
    wraps_ = wraps_ + t:get("wraps")
    if fb == "" then fb = t:get("first_bad") end
  end
  io.write(string.format(
    'BENCHJSON {"ok":%d,"bad":%d,"wraps":%d,"duration_us":%d,"requests":%d,"first_bad":"%s",' ..
    '"p50_us":%d,"p99_us":%d}\n',
    ok_, bad_, wraps_, summary.duration, summary.requests, esc(fb),
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


@dataclass
class LoadResult:
    rate: float  # completed operations per second
    requests: int = 0
    errors: int = 0
    detail: str = ""
    p50: float | None = None  # seconds
    p99: float | None = None


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk_latency(text: str) -> tuple[float | None, float | None]:
    """p50 and p99 in seconds from `wrk --latency`'s distribution."""
    found = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        found[pct] = float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else None
    return found["50"], found["99"]


def percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def parse_wrk(text: str) -> tuple[float, int, int]:
    """(requests/s, total requests, non-2xx/3xx + socket errors) from wrk's text output."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(x) for x in m.groups())
    return rate, total, errors


class Loader:
    def __init__(self, work: Path, duration: float, use_wrk: bool) -> None:
        self.work = work
        self.duration = duration
        self.use_wrk = use_wrk
        (work / "dynamic.lua").write_text(WRK_DYNAMIC)

    def fixed(
        self, server: Server, method: str, path: str, headers: dict[str, str], connections: int = 64
    ) -> LoadResult:
        """GET/HEAD of one URL by many connections."""
        url = server.base + path
        if not self.use_wrk or method == "HEAD":
            return raw_fixed(server.port, method, path, headers, connections, self.duration)
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{self.duration:g}s", "--timeout", "10s", "--latency"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=self.duration + 60)
        if out.returncode != 0:
            raise BenchError(f"wrk failed: {' '.join(cmd)} {url}\n{out.stdout}{out.stderr}")
        rate, total, errors = parse_wrk(out.stdout)
        if total == 0:
            errors += 1
        return LoadResult(rate, total, errors, out.stdout if errors else "", *parse_wrk_latency(out.stdout))

    def dynamic(
        self, server: Server, records: list[tuple[str, str, str, bytes]], mode: str, connections: int = 16
    ) -> LoadResult:
        """Distinct requests from `records`; in mode postput each record is one blob pushed in two."""
        if not self.use_wrk:
            return asyncio.run(httpx_dynamic(server.base, records, mode, connections, self.duration))
        path = self.work / f"records-{server.key}-{mode}-{time.monotonic_ns()}.bin"
        with open(path, "wb") as fh:
            for method, p, ctype, body in records:
                fh.write(f"{method} {p} {ctype} {len(body)}\n".encode() + body)
        cmd = [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{self.duration:g}s",
            "--timeout",
            "10s",
            "-s",
            str(self.work / "dynamic.lua"),
            server.base + "/v2/",
            "--",
            str(path),
            mode,
            REPO,
            "2",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.duration + 120)
        path.unlink()
        if out.returncode != 0:
            raise BenchError(f"wrk failed: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        m = re.search(r"BENCHJSON (\{.*\})", out.stdout)
        if not m:
            raise BenchError(f"wrk printed no summary: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        s = json.loads(m.group(1))
        _, _, socket_errors = parse_wrk(out.stdout)
        rate = s["ok"] / (s["duration_us"] / 1e6)
        detail = ""
        if s["bad"] or socket_errors:
            detail = (
                f"{s['bad']} bad responses, {socket_errors} socket/non-2xx errors; first: {s['first_bad']}"
            )
        if s["wraps"]:
            detail += f" (request list reused {s['wraps']}x: some pushes repeated earlier ones)"
        return LoadResult(rate, s["requests"], s["bad"], detail.strip(), s["p50_us"] / 1e6, s["p99_us"] / 1e6)


class _RawConn(asyncio.Protocol):
    """One kept-alive connection that sends a fixed request again as soon as each response ends."""

    def __init__(self, load: _RawLoad) -> None:
        self.load = load
        self.buf = bytearray()
        self.need: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent = time.perf_counter()
        self.transport.write(self.load.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).decode("latin-1")
                del self.buf[: end + 4]
                lines = head.split("\r\n")
                self.status = int(lines[0].split()[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "transfer-encoding":
                        self.load.statuses["chunked (unsupported by this client)"] += 1
                        self.transport.close()
                        return
                self.need = 0 if self.load.head else length
            if len(self.buf) < self.need:
                return
            del self.buf[: self.need]
            self.need = None
            self.load.statuses[self.status] += 1
            now = time.perf_counter()
            self.load.latencies.append(now - self.sent)
            if now < self.load.deadline:
                self.sent = now
                self.transport.write(self.load.request)
            else:
                self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.open -= 1
        if time.perf_counter() < self.load.deadline:
            self.load.statuses["connection lost"] += 1
            self.load.reconnect()
        elif self.load.open == 0:
            self.load.finished.set()


class _RawLoad:
    def __init__(self, port: int, request: bytes, head: bool, deadline: float) -> None:
        self.port, self.request, self.head, self.deadline = port, request, head, deadline
        self.statuses: Counter = Counter()
        self.latencies: list[float] = []
        self.open = 0
        self.tasks: set[asyncio.Future] = set()
        self.finished = asyncio.Event()

    def reconnect(self) -> None:
        self.open += 1
        self.tasks.add(asyncio.ensure_future(self._connect()))

    async def _connect(self) -> None:
        try:
            await asyncio.get_running_loop().create_connection(lambda: _RawConn(self), HOST, self.port)
        except OSError as exc:
            self.open -= 1
            self.statuses[f"connect error {exc.__class__.__name__}"] += 1
            if time.perf_counter() < self.deadline:
                await asyncio.sleep(0.01)
                self.reconnect()
            elif self.open == 0:
                self.finished.set()


def raw_fixed(
    port: int, method: str, path: str, headers: dict[str, str], connections: int, duration: float
) -> LoadResult:
    """A minimal HTTP/1.1 load generator (asyncio, uvloop when present) for what wrk cannot do: wrk 4.1
    waits for a body after a HEAD response that has a Content-Length, so it stalls on HEAD."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def run() -> tuple[Counter, float, list[float]]:
        started = time.perf_counter()
        load = _RawLoad(port, request, method == "HEAD", started + duration)
        for _ in range(connections):
            load.reconnect()
        await asyncio.wait_for(load.finished.wait(), duration + 30)
        return load.statuses, time.perf_counter() - started, load.latencies

    try:
        import uvloop

        statuses, elapsed, latencies = uvloop.run(run())
    except ImportError:
        statuses, elapsed, latencies = asyncio.run(run())
    ok = sum(n for s, n in statuses.items() if isinstance(s, int) and 200 <= s < 400)
    errors = sum(statuses.values()) - ok
    return LoadResult(
        ok / elapsed,
        sum(statuses.values()),
        errors,
        f"statuses {dict(statuses)}" if errors else "",
        *percentiles(latencies),
    )


async def httpx_dynamic(
    base: str, records: list[tuple[str, str, str, bytes]], mode: str, connections: int, duration: float
) -> LoadResult:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    it = iter(records)
    ok, bad, first_bad = 0, 0, ""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal ok, bad, first_bad
            while time.perf_counter() < deadline:
                rec = next(it, None)
                if rec is None:
                    return
                method, path, ctype, body = rec
                sent = time.perf_counter()
                if mode == "postput":
                    r = await client.post(f"/v2/{REPO}/blobs/uploads/")
                    loc = client.base_url.join(r.headers.get("location", ""))
                    sep = "&" if "?" in str(loc) else "?"
                    resp = await client.put(
                        f"{loc}{sep}digest={path}", content=body, headers={"Content-Type": ctype}
                    )
                else:
                    resp = await client.request(method, path, content=body, headers={"Content-Type": ctype})
                latencies.append(time.perf_counter() - sent)
                if resp.status_code == 201:
                    ok += 1
                else:
                    bad += 1
                    first_bad = first_bad or f"{resp.status_code} {resp.text[:300]}"

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    detail = f"{bad} bad; first: {first_bad}" if bad else ""
    return LoadResult(ok / elapsed, ok + bad, bad, detail, *percentiles(latencies))


def manifest_records(cfg: tuple[str, int], layer: tuple[str, int], count: int) -> list:
    salt = os.urandom(4).hex()
    records = []
    for i in range(count):
        body = manifest_body(cfg[0], cfg[1], layer[0], layer[1], f"{salt}-{i}")
        records.append(("PUT", f"/v2/{REPO}/manifests/m-{salt}-{i}", OCI_MANIFEST, body))
    return records


def blob_records(count: int, size: int, form: str) -> list:
    records = []
    for _ in range(count):
        blob = os.urandom(size)
        digest = sha256_digest(blob)
        if form == "POST ?digest=":
            records.append(
                ("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}", "application/octet-stream", blob)
            )
        else:
            records.append(("PUT", digest, "application/octet-stream", blob))
    return records


# --------------------------------------------------------------------------------------------------
# Profiling (py-spy), on an extra, unmeasured run of a load


def profile_load(server: Server, work: Path, name: str, seconds: float, run_load, gil: bool = False) -> str:
    pyspy = shutil.which("py-spy")
    if not pyspy:
        return "py-spy not installed (pip install py-spy)"
    out = work / f"profile-{name}.txt"
    cmd = [
        pyspy,
        "record",
        "--pid",
        str(server.proc.pid),
        "--subprocesses",
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
        "--duration",
        str(int(seconds) + 1),
        "--nonblocking",
    ]
    if gil:
        cmd.append("--gil")
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    try:
        run_load()
    finally:
        try:
            log_text = spy.communicate(timeout=seconds + 60)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            spy.kill()
            log_text = spy.communicate()[0].decode(errors="replace")
    if not out.exists():
        return f"py-spy produced no profile: {log_text[-1000:]}"
    return summarize_profile(out.read_text())


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def _thread_kind(frames: list[str]) -> str:
    for f in frames:
        if f.startswith("_connection_worker_thread "):
            return "aiosqlite thread"
        if f.startswith("_worker (concurrent/futures"):
            return "executor threads"
    if any(f.startswith("Thread._bootstrap") for f in frames):
        return "other threads"
    return "main thread (event loop)"


def summarize_profile(raw: str, top: int = 18) -> str:
    """Where the server's busy samples fall, from py-spy's collapsed stacks: by thread kind, by leaf
    (self) function, and by function of the registry's own code including its callees. A leaf that is
    a Python function calling C (socket writes, sqlite3, hashlib, os.fsync) carries the C time too."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        kinds[_thread_kind(frames)] += n
        own[frames[-1]] += n
        for f in set(frames):
            if (
                f.endswith(".py)")
                and "(registry/" in f
                and "registry/__main__.py" not in f
                and "registry/cli/" not in f
            ):
                incl[f] += n
    if not total:
        return "empty profile"
    lines = [
        f"{total} busy samples; by thread: "
        + ", ".join(f"{k} {100 * n / total:.0f}%" for k, n in kinds.most_common())
    ]
    lines += ["  self%  leaf function (where the samples are)"]
    lines += [f"  {100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["  incl%  registry's own functions, including callees"]
    lines += [f"  {100 * n / total:5.1f}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The run


@dataclass
class Op:
    key: str
    label: str
    unit: str
    target: float
    higher_is_better: bool = True


# Targets: issue 11's ratios to Distribution in the same run (meeting them means passing zot, whose own
# ratios were 12.2x on manifest GETs and 4.6x on 1 MiB GETs); peak RSS at most Distribution's + 40 MiB.
OPS = [
    Op("push_monolithic", "blob push, monolithic", "MB/s", 1.5),
    Op("push_chunked", "blob push, 16 MiB chunks", "MB/s", 1.6),
    Op("pull", "blob pull", "MB/s", 1.0),
    Op("manifest_get", "manifest GET by tag (c=64)", "req/s", 14.0),
    Op("blob_head", "blob HEAD (c=64)", "req/s", 12.0),
    Op("blob_get_1mib", "1 MiB blob GET (c=16)", "req/s", 5.0),
    Op("manifest_put", "manifest PUT (c=16)", "req/s", 3.0),
    Op("small_push", "small-blob push (c=16)", "blobs/s", 3.0),
    Op("small_push_2req", "  same, POST + PUT (info)", "blobs/s", 0.0),
    Op("mixed", "mixed: image pulls (c=6)", "images/s", 0.0),
    Op("mixed_push", "  same, image pushes (c=2)", "images/s", 0.0),
    Op("peak_rss", "peak RSS (server tree)", "MiB", 40.0, higher_is_better=False),
]


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MiB":
        return f"{value:.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small blob, short loads (for development)")
    parser.add_argument("--big-mib", type=int, help="size of the big blob in MiB (default 1024, quick 128)")
    parser.add_argument("--workers", type=int, help="pass --server-workers N to our server")
    parser.add_argument(
        "--server",
        choices=["granian", "hypercorn"],
        help="our HTTP engine (default: the registry's default)",
    )
    parser.add_argument("--duration", type=float, help="seconds per request-rate load (default 5, quick 2)")
    parser.add_argument(
        "--repeats", type=int, help="runs of each big transfer, median kept (default 3, quick 2)"
    )
    both = parser.add_mutually_exclusive_group()
    both.add_argument("--ours-only", action="store_true")
    both.add_argument("--theirs-only", action="store_true")
    parser.add_argument(
        "--only",
        help="measure only these operations, comma-separated keys (e.g. manifest_put,small_push_2req); "
        "pull needs push_monolithic or push_chunked with it",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the measured loads, profile our server with py-spy during extra runs "
        "of the request-rate loads and print the top functions",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the thread holding the GIL (py-spy --gil), i.e. "
        "where the Python-level CPU goes; C work that releases the GIL disappears",
    )
    parser.add_argument(
        "--theirs-verbose-log",
        action="store_true",
        help="run Distribution with its default info log and access log (default: quiet, "
        "like ours, which logs no line per request)",
    )
    parser.add_argument(
        "--theirs-cache",
        action="store_true",
        help="give Distribution the in-memory blob descriptor cache of its sample config",
    )
    parser.add_argument(
        "--httpx",
        action="store_true",
        help="do without wrk even if it is installed (raw asyncio generator for GET/HEAD, httpx for writes)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each operation wait up to this many seconds for the machine to be idle (0: never)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, logs)")
    parser.add_argument("--tmp", type=Path, help="parent folder for the temporary folder")
    args = parser.parse_args()

    big_mib = args.big_mib or (128 if args.quick else 1024)
    duration = args.duration or (2.0 if args.quick else 5.0)
    repeats = args.repeats or (2 if args.quick else 3)
    use_wrk = bool(shutil.which("wrk")) and not args.httpx
    only = set(args.only.split(",")) if args.only else set()
    unknown = only - {op.key for op in OPS}
    if unknown:
        raise SystemExit(
            f"--only: no operation {', '.join(sorted(unknown))}; one of {', '.join(op.key for op in OPS)}"
        )
    if not use_wrk and not args.httpx:
        log(
            "wrk not found (apt-get install -y wrk): falling back to asyncio load generators; "
            "the httpx one for writes needs much of a core itself and understates write rates"
        )
    if not shutil.which("curl"):
        raise SystemExit("curl is required")

    work = Path(tempfile.mkdtemp(prefix="regbench-", dir=args.tmp))
    servers: list[Server] = []
    errors: list[str] = []
    results: dict[str, dict[str, float | None]] = {op.key: {} for op in OPS}
    cpu: dict[str, dict[str, float]] = {op.key: {} for op in OPS}
    rest: dict[str, dict[str, tuple[float, float]]] = {op.key: {} for op in OPS}
    latency: dict[str, dict[str, tuple[float | None, float | None]]] = {op.key: {} for op in OPS}
    profiles: dict[str, str] = {}
    big: BigFile | None = None

    def cleanup() -> None:
        for s in servers:
            s.stop()
        if big:
            big.close()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def on_signal(signum, _frame):
        # Not an exception: raised inside an event-loop callback it would be swallowed. Stop what this
        # script started and leave at once (a wrk or curl still running ends by its own time limit).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log(f"interrupted by signal {signum}: stopping the servers")
        cleanup()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        big = BigFile(work / "big.bin", big_mib * MiB)
        if not args.theirs_only:
            log("starting our registry")
            servers.append(start_ours(work, args.workers, args.server))
        if not args.ours_only:
            log("starting Distribution")
            servers.append(start_theirs(work, args.theirs_verbose_log, args.theirs_cache))
        clients = {s.key: Client(s.port) for s in servers}
        alive = {s.key: True for s in servers}
        loader = Loader(work, duration, use_wrk)

        def measure(op: str, fn) -> None:
            """Run `fn(server)` for each server in turn; record the figure or the failure."""
            if only and op not in only:
                return
            for s in servers:
                if not alive[s.key]:
                    continue
                settle_disk()
                if args.quiet_wait > 0:
                    busy = wait_for_quiet(args.quiet_wait)
                    if busy > 0.3:
                        s.notes.append(f"{op}: machine still busy ({busy:.2f} cores) when the run started")
                s.set_phase(op)
                clients[s.key].close()  # a fresh connection: the last one may have idled out
                cpu_before, wall_before, machine_before = s.cpu(), time.perf_counter(), machine_cpu()
                try:
                    value = fn(s)
                except BenchError as exc:
                    errors.append(f"[{s.label}] {op}:\n{textwrap.indent(str(exc), '  ')}")
                    log(f"{s.label}: {op} FAILED (details at the end)")
                    clients[s.key].close()
                    value = None
                if s.proc.poll() is not None:
                    alive[s.key] = False
                    errors.append(
                        f"[{s.label}] server exited (code {s.proc.returncode}) during {op}; "
                        f"log tail:\n{s.log_path.read_text(errors='replace')[-2000:]}"
                    )
                results[op][s.key] = value
                wall = time.perf_counter() - wall_before
                cpu[op][s.key] = (s.cpu() - cpu_before) / wall if wall else 0.0
                busy, steal = (a - b for a, b in zip(machine_cpu(), machine_before, strict=True))
                rest[op][s.key] = (busy / wall - cpu[op][s.key], steal / wall) if wall else (0.0, 0.0)
                if value is not None:
                    log(
                        f"{s.label:>12}: {op:<16} {fmt(value, next(o.unit for o in OPS if o.key == op))} "
                        f"(server used {cpu[op][s.key]:.2f} cores)"
                    )
                s.set_phase("between")

        # Setup: monolithic probe, an image and a 1 MiB blob to read back.
        images: dict[str, tuple[str, str, str]] = {}
        mib_blob = os.urandom(MiB)
        for s in servers:
            try:
                probe_monolithic(s, clients[s.key])
                images[s.key] = make_image(clients[s.key], REPO, "latest")
                push_blob(clients[s.key], REPO, mib_blob)
            except BenchError as exc:
                errors.append(f"[{s.label}] setup:\n{textwrap.indent(str(exc), '  ')}")
                alive[s.key] = False

        last_digest: dict[str, str] = {}

        def big_push(kind):
            def run(s: Server) -> float:
                figures = []
                for _ in range(repeats):
                    fn = push_monolithic if kind == "mono" else push_chunked
                    settle_disk()
                    figures.append(fn(s, clients[s.key], big))
                    last_digest[s.key] = big.digest
                log(f"{s.label:>12}: {kind} runs {', '.join(f'{f:.0f}' for f in figures)} MB/s")
                return statistics.median(figures)

            return run

        measure("push_monolithic", big_push("mono"))
        measure("push_chunked", big_push("chunked"))

        def big_pull(s: Server) -> float:
            digest = last_digest.get(s.key)
            if not digest:
                raise BenchError("no big blob was pushed, nothing to pull")
            figures = []
            for _ in range(repeats):
                settle_disk()
                figures.append(pull(s, big, digest))
            log(f"{s.label:>12}: pull runs {', '.join(f'{f:.0f}' for f in figures)} MB/s")
            verify_pull(s, digest, big.size)
            return statistics.median(figures)

        measure("pull", big_pull)
        for c in clients.values():
            c.close()

        def probe_get(s: Server, method: str, path: str, headers: dict[str, str]) -> None:
            reply = clients[s.key].request(method, path, headers=headers)
            if reply.status != 200:
                raise BenchError(describe(method, s.base + path, headers, "", reply))

        def rate_of(op: str, s: Server, r: LoadResult) -> float:
            latency[op][s.key] = (r.p50, r.p99)
            return r.rate

        def manifest_get(s: Server) -> float:
            path, headers = f"/v2/{REPO}/manifests/latest", {"Accept": ACCEPT}
            probe_get(s, "GET", path, headers)
            r = loader.fixed(s, "GET", path, headers)
            if r.errors:
                raise BenchError(
                    f"load of GET {s.base}{path} (Accept: {ACCEPT}) had {r.errors} errors:\n{r.detail}"
                )
            return rate_of("manifest_get", s, r)

        def blob_head(s: Server) -> float:
            path = f"/v2/{REPO}/blobs/{images[s.key][2]}"
            probe_get(s, "HEAD", path, {})
            r = loader.fixed(s, "HEAD", path, {})
            if r.errors:
                raise BenchError(f"load of HEAD {s.base}{path} had {r.errors} errors:\n{r.detail}")
            return rate_of("blob_head", s, r)

        def blob_get_1mib(s: Server) -> float:
            path = f"/v2/{REPO}/blobs/{sha256_digest(mib_blob)}"
            probe_get(s, "GET", path, {})
            r = loader.fixed(s, "GET", path, {}, connections=16)
            if r.errors:
                raise BenchError(f"load of GET {s.base}{path} had {r.errors} errors:\n{r.detail}")
            return rate_of("blob_get_1mib", s, r)

        def layer_info(s: Server) -> tuple[tuple[str, int], tuple[str, int]]:
            _, cfg, layer = images[s.key]
            sizes = []
            for d in (cfg, layer):
                reply = clients[s.key].request("HEAD", f"/v2/{REPO}/blobs/{d}", expect=(200,))
                sizes.append(int(reply.header("content-length")))
            return (cfg, sizes[0]), (layer, sizes[1])

        n_records = int(max(duration, 1) * 6000)

        def manifest_put(s: Server) -> float:
            cfg, layer = layer_info(s)
            records = manifest_records(cfg, layer, n_records)
            m, p, ct, body = records[0]
            clients[s.key].request(
                m, p, body=body, headers={"Content-Type": ct}, expect=(201,), body_note=body.decode()
            )
            r = loader.dynamic(s, records[1:], "plain")
            if r.errors:
                raise BenchError(
                    f"load of distinct manifest PUTs (e.g. PUT {s.base}{records[1][1]}, "
                    f"Content-Type {OCI_MANIFEST}): {r.detail}"
                )
            if r.detail:
                s.notes.append(f"manifest PUT: {r.detail}")
            return rate_of("manifest_put", s, r)

        def small_push(form: str):
            def run(s: Server) -> float:
                use = s.monolithic_form if form == "native" else "POST + PUT ?digest="
                records = blob_records(n_records, 1024, use)
                mode = "plain" if use == "POST ?digest=" else "postput"
                if mode == "plain":
                    m, p, ct, body = records[0]
                    clients[s.key].request(
                        m,
                        p,
                        body=body,
                        headers={"Content-Type": ct},
                        expect=(201,),
                        body_note=f"{len(body)} bytes",
                    )
                    records = records[1:]
                r = loader.dynamic(s, records, mode)
                if r.errors:
                    example = (
                        f"POST {s.base}{records[0][1]}"
                        if mode == "plain"
                        else f"POST {s.base}/v2/{REPO}/blobs/uploads/ then PUT <Location>&digest="
                    )
                    raise BenchError(f"load of distinct 1 KiB blob pushes ({example}): {r.detail}")
                if r.detail:
                    s.notes.append(f"small push: {r.detail}")
                return rate_of("small_push" if form == "native" else "small_push_2req", s, r)

            return run

        measure("manifest_get", manifest_get)
        measure("blob_head", blob_head)
        measure("blob_get_1mib", blob_get_1mib)
        measure("manifest_put", manifest_put)
        measure("small_push", small_push("native"))
        measure("small_push_2req", small_push("postput"))

        def mixed(s: Server) -> float:
            """Whole images pulled per second while a quarter of the clients push; the pushes' rate
            and both latencies recorded beside it (one run gives both)."""
            push_mixed_image(clients[s.key], "base", MIXED_LAYERS_MIB, b"base")
            r = mixed_load(s, max(2 * duration, 4.0))
            latency["mixed"][s.key] = percentiles(r.pulls)
            latency["mixed_push"][s.key] = percentiles(r.pushes)
            results["mixed_push"][s.key] = len(r.pushes) / r.elapsed
            s.notes.append(
                f"mixed: {len(r.pulls)} image pulls ({r.pulled_bytes / r.elapsed / 1e6:,.0f} MB/s) and "
                f"{len(r.pushes)} image pushes in {r.elapsed:.1f} s"
            )
            return len(r.pulls) / r.elapsed

        measure("mixed", mixed)

        if args.profile:
            ours = next((s for s in servers if s.key == "ours" and alive["ours"]), None)
            if ours is None:
                log("--profile: our server is not running; nothing to profile")
            else:
                plans = [
                    ("manifest_get", lambda: manifest_get(ours)),
                    ("blob_head", lambda: blob_head(ours)),
                    ("blob_get_1mib", lambda: blob_get_1mib(ours)),
                    ("manifest_put", lambda: manifest_put(ours)),
                    ("small_push", lambda: small_push("native")(ours)),
                    ("small_push_2req", lambda: small_push("postput")(ours)),
                ]
                plans = [(name, fn) for name, fn in plans if not only or name in only]
                for name, fn in plans:
                    log(f"profiling our server during {name}")
                    ours.set_phase("profile")
                    try:
                        profiles[name] = profile_load(ours, work, name, duration, fn, args.profile_gil)
                    except BenchError as exc:
                        profiles[name] = f"load failed: {exc}"
                    clients["ours"].close()

        for s in servers:
            s.set_phase("end")
            time.sleep(0.1)
            results["peak_rss"][s.key] = s.sampler.peak_kib / 1024 if s.sampler else None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup()

    # Report
    keys = [s.key for s in servers]
    print()
    print(
        f"registry benchmark: big blob {big_mib} MiB x{repeats} (median), loads {duration:g} s with "
        f"{'wrk -t2' if use_wrk else 'asyncio/httpx'}, our workers: "
        f"{args.workers if args.workers is not None else 'default'}, {os.cpu_count()} CPUs"
    )
    for s in servers:
        if s.monolithic_form:
            print(f"  {s.label}: monolithic push measured as {s.monolithic_form}")
    cells = [f"{'operation':<28}", f"{'ours':>9}", f"{'Distribution':>12}", f"{'ratio':>6}", f"{'target':>9}"]
    header = "| " + " | ".join([*cells, f"{'ok':<4}"]) + " |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    table = []
    for op in OPS:
        ours_v, theirs_v = results[op.key].get("ours"), results[op.key].get("theirs")
        if op.key == "peak_rss":
            ratio = None
            target = f"<= D+{op.target:g}"
            met = None if ours_v is None or theirs_v is None else ours_v <= theirs_v + op.target
        else:
            ratio = ours_v / theirs_v if ours_v and theirs_v else None
            target = f">= {op.target:g}" if op.target else ""
            met = None if ratio is None or not op.target else ratio >= op.target
        table.append(
            {
                "op": op.key,
                "label": op.label,
                "unit": op.unit,
                "ours": ours_v,
                "theirs": theirs_v,
                "ratio": ratio,
                "target": op.target,
                "met": met,
                "server_cores": cpu[op.key],
                "latency_p50_p99_s": latency[op.key],
            }
        )
        print(
            f"| {op.label:<28} | {fmt(ours_v, op.unit):>9} | {fmt(theirs_v, op.unit):>12} | "
            f"{(f'{ratio:.2f}' if ratio is not None else '-'):>6} | {target:>9} | "
            f"{ ({True: 'yes', False: 'NO', None: ''}[met]):<4} |"
        )
    print("units: MB/s = 10^6 bytes/s; rates are completed operations per second (201 for pushes)")
    print("latency of each request during the rates (mixed: of each whole image), p50 / p99 in ms:")
    for op in OPS:
        if latency[op.key]:
            vals = "   ".join(
                f"{k} {fmt_ms(p50)} / {fmt_ms(p99)}" for k, (p50, p99) in latency[op.key].items()
            )
            print(f"  {op.label:<28} {vals}")
    print(
        "CPU during each operation, in cores: server (summed over its processes) / rest of the machine "
        "(client and anything else) / steal"
    )
    for op in OPS:
        if op.key == "peak_rss":
            continue
        vals = "   ".join(
            f"{k} {cpu[op.key][k]:.2f}/{rest[op.key][k][0]:.2f}/{rest[op.key][k][1]:.2f}"
            for k in keys
            if k in cpu[op.key]
        )
        print(f"  {op.label:<28} {vals}")
    for s in servers:
        if s.sampler:
            phases = ", ".join(f"{p} {v / 1024:.0f}" for p, v in s.sampler.phase_peaks.items())
            print(f"  {s.label} RSS peaks by phase (MiB): {phases}")
        for note in s.notes:
            print(f"  {s.label}: {note}")
    for name, text in profiles.items():
        print(
            f"\npy-spy profile{' (GIL holder only)' if args.profile_gil else ''} of our server during {name} "
            "(extra run, not measured):"
        )
        print(textwrap.indent(text, "  "))
    if errors:
        print("\nFAILURES (exact requests and responses):")
        for e in errors:
            print(e)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "big_mib": big_mib,
                    "repeats": repeats,
                    "duration_s": duration,
                    "load_tool": "wrk" if use_wrk else "asyncio/httpx",
                    "workers": args.workers,
                    "monolithic_form": {s.key: s.monolithic_form for s in servers},
                    "results": table,
                    "rest_of_machine_cores": {k: {s: v[0] for s, v in d.items()} for k, d in rest.items()},
                    "profiles": profiles,
                    "errors": errors,
                    "notes": {s.key: s.notes for s in servers},
                },
                indent=2,
            )
        )
        log(f"figures written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
