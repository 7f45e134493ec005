"""Load generator for `reviewsense serve` (loopback only, bounded in requests and time).

    python bench/serve_load.py [--model DIR] [--clients 100] [--rate 1000] [--requests 12000] [--workers 2]

Starts `reviewsense serve` in a child process on 127.0.0.1 (the default model, trained on
IMDB unless --model is given), then:

1. single-review requests: ``--clients`` keep-alive connections send ``POST /v1/predict``
   with one IMDB test review each, open loop: each connection has its own Poisson arrival
   schedule, together ``--rate`` requests/s. Latency runs from the *scheduled* send time to
   the full response, so a slow server is not hidden by clients waiting for it (no
   coordinated omission). Reports p50/p90/p99/max, achieved requests/s and errors.
2. closed loop at the same number of connections (each sends its next request as soon as
   the previous answer arrives): the server's saturation throughput and its latencies.
3. the batch endpoint: requests of ``--batch`` texts from 4 connections, closed loop:
   reviews/s.

The client is plain asyncio streams with hand-written HTTP/1.1, so the generator costs far
less CPU than the server it measures (they share this machine's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, machine, write_results  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(texts: list[str], port: int) -> bytes:
    body = json.dumps({"texts": texts}).encode()
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def run_phase(port: int, payloads: list[bytes], clients: int, total: int, rate: float | None,
                    seed: int = 0) -> dict:
    """``total`` requests over ``clients`` connections; open loop at ``rate`` req/s, or closed
    loop when ``rate`` is None."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    rng = random.Random(seed)
    # one Poisson arrival process for the whole run; arrival j goes to connection j % clients
    arrivals = start + np.cumsum([rng.expovariate(rate) for _ in range(total)]) if rate else None

    async def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for j in range(i, total, clients):
                if arrivals is not None:
                    delay = arrivals[j] - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    began = float(arrivals[j])
                else:
                    began = loop.time()
                try:
                    status = await exchange(reader, writer, payloads[rng.randrange(len(payloads))])
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(loop.time() - began)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0 - 0.2
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(elapsed, 2), "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}


def load_reviews(data: str, n: int) -> list[str]:
    from reviewsense.data.imdb import read_imdb

    if Path(data).exists():
        texts = read_imdb(data, ["test"])["test"].texts
        return random.Random(0).sample(list(texts), min(n, len(texts)))
    words = ["the", "a", "movie", "film", "plot", "was", "great", "awful", "boring", "superb", "acting", "and",
             "it", "story", "not"]
    rng = random.Random(0)  # no IMDB here: generated reviews of IMDB-like length
    return [" ".join(rng.choice(words) for _ in range(230)) for _ in range(n)]


def default_model(data: str, workdir: Path) -> str:
    run = workdir / "run"
    subprocess.run([sys.executable, "-m", "reviewsense.cli", "train", "--data", data, "--run-dir", str(run)],
                   check=True, env={**os.environ, "REVIEWSENSE_QUIET": "1"})
    return str(run / "model")


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become healthy in time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: train the default model on IMDB first)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s over all clients")
    ap.add_argument("--requests", type=int, default=12_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: cores)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batch-requests", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/serve_load.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(args.data, Path(tmp))
        reviews = load_reviews(args.data, 5000)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", "serve", "--model", model,
                                   "--port", str(port), "--workers", str(args.workers)], stderr=subprocess.DEVNULL)
        try:
            wait_healthy(port, server)
            singles = [request_bytes([r], port) for r in reviews]
            rng = random.Random(1)
            batches = [request_bytes(rng.sample(reviews, args.batch), port) for _ in range(20)]
            asyncio.run(run_phase(port, singles, 10, 500, None))  # warm-up
            rows = []
            for name, payloads, clients, total, rate in (
                    (f"1 review/request, open loop {args.rate:g} req/s", singles, args.clients, args.requests,
                     args.rate),
                    ("1 review/request, closed loop", singles, args.clients, args.requests, None),
                    (f"{args.batch} reviews/request, closed loop", batches, 4, args.batch_requests, None)):
                result = asyncio.run(run_phase(port, payloads, clients, total, rate))
                per_request = args.batch if payloads is batches else 1
                rows.append({"phase": name, "clients": clients, **result,
                             "reviews_per_s": round(result["requests_per_s"] * per_request, 1)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(10)

    print("\n| phase | clients | requests | errors | req/s | reviews/s | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['clients']} | {r['requests']:,} | {r['errors']} | {r['requests_per_s']:,.0f} | "
              f"{r['reviews_per_s']:,.0f} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} |")
    meta = {**machine(), "model": args.model or "default model trained on IMDB", "review_source": args.data,
            "server_workers": args.workers, "open_loop_rate": args.rate}
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
