"""Garbage collection figures, not part of the test run.

    python tests/perf/gc_bench.py collect [--blobs 100000] [--manifests 10000] [--database-url URL]
    python tests/perf/gc_bench.py latency [--seconds 30]

`collect` fills an index directly through the index API (every manifest references `--per-manifest`
blobs; the other blobs are referenced by nothing) and times one collection with no grace, which forgets
every unreferenced blob and runs its store delete (a no-op here: the bytes were never written, so this
is the index's share of the work). `latency` serves a registry and measures push and pull p99 latency
without and then with a collector (no grace) running every half second in a process beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from registry.app import Registry
from registry.config import load_settings
from registry.index import ManifestPut, ManifestRecord, SQLIndex
from registry.index.migrate import upgrade
from registry.lifecycle.collector import Collector
from registry.storage import FilesystemStore
from tests.support.oci import OCI_MANIFEST, push_blob, sha256
from tests.support.server import RegistryProcess


async def _fill(index: SQLIndex, blobs: int, manifests: int, per_manifest: int) -> None:
    digests = [sha256(f"blob {n}".encode()) for n in range(blobs)]
    for n, digest in enumerate(digests):
        await index.link_blob(f"bench/r{n % 100}", digest, 1000)
    for m in range(manifests):
        repository = f"bench/r{(m * per_manifest) % 100}"
        # Blobs of one repository: n % 100 equal for n = m*per_manifest + 100*k.
        referenced = [digests[(m * per_manifest + 100 * k) % blobs] for k in range(per_manifest)]
        payload = json.dumps({"bench": m, "layers": referenced}).encode()
        record = ManifestRecord(sha256(payload), OCI_MANIFEST, len(payload), payload=payload)
        await index.put_manifest(repository, ManifestPut(record, tuple(referenced), (), (f"t{m}",)))


def collect(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gc-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'index.db'}"
    upgrade(url)

    async def run() -> None:
        index = SQLIndex(url)
        await index.open()
        started = time.perf_counter()
        await _fill(index, args.blobs, args.manifests, args.per_manifest)
        print(
            f"filled {args.blobs} blobs, {args.manifests} manifests in {time.perf_counter() - started:.1f} s"
        )
        collector = Collector(index, FilesystemStore(folder / "blobs"), timedelta(0))
        started = time.perf_counter()
        collected = await collector.run()
        print(f"collection: {time.perf_counter() - started:.1f} s: {collected}")
        started = time.perf_counter()
        collected = await collector.run()
        print(f"a collection with nothing to do: {time.perf_counter() - started:.1f} s")
        await index.close()

    asyncio.run(run())


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


def _measure(client: httpx.Client, seconds: float, tag: str) -> tuple[list[float], list[float]]:
    pushes, pulls = [], []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        layer = f"{tag} layer {n}".encode() * 100
        config = json.dumps({"n": n, "tag": tag}).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha256(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        started = time.perf_counter()
        push_blob(client, "bench/app", config)
        push_blob(client, "bench/app", layer)
        response = client.put(
            "/v2/bench/app/manifests/latest", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        pushes.append(time.perf_counter() - started)
        if response.status_code != 201:
            continue  # lost a blob to the collector (grace 0): the client would push again
        started = time.perf_counter()
        client.get("/v2/bench/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
        client.get(f"/v2/bench/app/blobs/{sha256(layer)}")
        pulls.append(time.perf_counter() - started)
    return pushes, pulls


def collect_forever(args: argparse.Namespace) -> None:
    """A collector process looping with no grace, as a busy `registry serve` background one would."""
    settings = load_settings(None, {"data_dir": args.data_dir})
    registry = Registry.build(settings)

    async def run() -> None:
        await registry.index.open()
        collector = Collector(
            registry.index, registry.store, timedelta(0), purge_uploads=registry.blobs.purge_expired
        )
        try:
            while True:
                print(await collector.run(), flush=True)
                await asyncio.sleep(args.pause)
        finally:
            await registry.index.close()

    asyncio.run(run())


def latency(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="gc-bench-")) / "data"
    server = RegistryProcess(data_dir, env={"REGISTRY_LOG_ACCESSLOG_DISABLED": "true"}).start()
    try:
        with server.client() as client:
            _measure(client, 3, "warm-up")
            quiet = _measure(client, args.seconds, "quiet")
            command = [sys.executable, __file__, "collect-forever", "--data-dir", str(data_dir)]
            report = (data_dir / "gc-runs").open("w")
            collector = subprocess.Popen(command, stdout=report)
            try:
                busy = _measure(client, args.seconds, "busy")
            finally:
                collector.terminate()
                collector.wait()
                report.close()
    finally:
        server.stop()
    for name, index in (("push", 0), ("pull", 1)):
        before, during = _p99(quiet[index]), _p99(busy[index])
        ratio = during / before
        print(f"{name} p99: {before:.1f} ms without the collector, {during:.1f} ms with it ({ratio:.2f}x)")
    runs = len((data_dir / "gc-runs").read_text().splitlines())
    print(f"{runs} collections ran beside {len(busy[0])} pushes")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(required=True)
    filled = commands.add_parser("collect")
    filled.add_argument("--blobs", type=int, default=100_000)
    filled.add_argument("--manifests", type=int, default=10_000)
    filled.add_argument("--per-manifest", type=int, default=5)
    filled.add_argument("--database-url", default="")
    filled.set_defaults(run=collect)
    timed = commands.add_parser("latency")
    timed.add_argument("--seconds", type=float, default=30)
    timed.set_defaults(run=latency)
    looping = commands.add_parser("collect-forever")
    looping.add_argument("--data-dir", required=True)
    looping.add_argument("--pause", type=float, default=0.5)
    looping.set_defaults(run=collect_forever)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
