#!/usr/bin/env python3
"""`registry pull` against `skopeo copy docker://... dir:` on the same multi-layer image, in one run.

A script, not a pytest test:

    python tests/perf/pull_vs_skopeo.py [--layers N] [--layer-mib N] [--rounds N]

It builds an OCI layout with N layers of random (incompressible) content, gzip-framed as real layers
are, starts a `registry serve` on a free loopback port, pushes the image with skopeo, then alternates
the two clients (fresh destination each round, so both download everything) and prints each round and
the medians. Both are timed as whole commands, interpreter / binary start included: what a user waits
for. Both verify every digest; skopeo writes the blobs to a directory, we into the local image store.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.images import _Layout, _tagged, host_arch  # noqa: E402
from tests.support.server import RegistryProcess  # noqa: E402

MiB = 1 << 20


def random_layer(index: int, size: int) -> tuple[bytes, bytes]:
    """(gzip blob, tar) of one file of `size` random bytes; gzip level 1, as the data does not compress."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(f"data/layer{index}.bin")
        info.size = size
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), tar


def build(dest: Path, layers: int, layer_size: int) -> int:
    layout = _Layout(dest)
    blobs = [random_layer(i, layer_size) for i in range(layers)]
    layout.write_index([_tagged(layout.image(host_arch(), blobs), "1")])
    return sum(len(blob) for blob, _ in blobs)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pull-vs-skopeo-"))
    server = RegistryProcess(work / "server")
    try:
        total = build(work / "layout", args.layers, args.layer_mib * MiB)
        server.start()
        image = f"{server.host}/perf/big:1"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{work / 'layout'}:1",
                f"docker://{image}",
            ],
            check=True,
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        ours, theirs = [], []
        print(f"image: {args.layers} layers, {total / MiB:.0f} MiB of blobs, registry at {server.url}")
        for round_ in range(1, args.rounds + 1):
            root, target = work / "client", work / "skopeo-dir"
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)
            pull = timed([sys.executable, "-m", "registry", "pull", "-q", "--root", str(root), image], env)
            copy = timed(
                ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"dir:{target}"], env
            )
            ours.append(pull)
            theirs.append(copy)
            print(
                f"round {round_}: registry pull {pull:.2f} s ({total / MiB / pull:.0f} MiB/s), "
                f"skopeo copy {copy:.2f} s ({total / MiB / copy:.0f} MiB/s)"
            )
        pull, copy = statistics.median(ours), statistics.median(theirs)
        print(
            f"median: registry pull {pull:.2f} s, skopeo copy {copy:.2f} s, "
            f"ratio skopeo/ours {copy / pull:.2f} (above 1: we are faster)"
        )
    finally:
        if server.proc is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
