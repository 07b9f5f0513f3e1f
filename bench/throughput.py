"""The embedded default against its own llama-server driven directly: cases per minute.

    python bench/throughput.py [--n 1] [--rounds 2] [--slots 1,2]

For each slot count: one llama-server with that many slots (`emulate.local`, started
before the clock). Then, alternating for `--rounds`: emulate (`emulate.run` of the
default conv sweep with --concurrency = slots, as `emulate run conv` does with no
server given: one slot per concurrent request), and the same request bodies posted
directly with httpx2 (as many at once as there are slots). The bodies come from the
cassette emulate's first pass records, so both send the same requests byte for byte.

On 2 cores a pass takes minutes and the machine's speed drifts between passes by
more than emulate's own cost, so beside cases per minute each pass shows how busy
the server was: the seconds llama-server reports spending (its `timings`) over the
pass's wall time. A client that adds nothing keeps it near 100%.

Goal (issue 13): at the default slot count, emulate >= 0.9x direct; and the default
is the slot count with the most cases per minute on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx2

import emulate
from emulate.config import DEFAULT_LOCAL_CONCURRENCY
from emulate.local import local_server
from emulate.model_config import LOCAL_MODEL_NAME


def _server_seconds(bodies: list[str | bytes]) -> float:
    total = 0.0
    for body in bodies:
        timings = json.loads(body).get("timings") or {}
        total += (timings.get("prompt_ms", 0) + timings.get("predicted_ms", 0)) / 1000
    return total


def run_emulate(url: str, slots: int, n: int, out: Path, tape: Path) -> tuple[float, float]:
    """Cases per minute, and the server's busy share of the wall time."""
    start = time.perf_counter()
    result = emulate.run(
        "conv", n=n, model=LOCAL_MODEL_NAME, base_url=url, concurrency=slots,
        out=str(out), record=str(tape), progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    assert result.done and not result.errors, result
    replies = [it["response"]["body"]["string"] for it in _interactions(tape)]
    return 60 * result.done / wall, _server_seconds(replies) / wall


def _interactions(tape: Path) -> list[dict]:
    return json.loads(tape.read_text())["interactions"]


def requests_of(tape: Path) -> list[tuple[str, bytes]]:
    return [
        (it["request"]["uri"].split("/v1", 1)[1], it["request"]["body"].encode())
        for it in _interactions(tape)
    ]


async def run_direct(
    url: str, requests: list[tuple[str, bytes]], slots: int
) -> tuple[float, float]:
    gate = asyncio.Semaphore(slots)
    headers = {"Content-Type": "application/json"}
    replies: list[bytes] = []
    async with httpx2.AsyncClient(base_url=url, timeout=600) as client:

        async def one(path: str, body: bytes) -> None:
            async with gate:
                reply = await client.post(path, content=body, headers=headers)
                reply.raise_for_status()
                replies.append(reply.content)

        start = time.perf_counter()
        await asyncio.gather(*(one(p, b) for p, b in requests))
        wall = time.perf_counter() - start
    return 60 * len(requests) / wall, _server_seconds(replies) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1, help="cases per grid cell (default 1: 24 cases)")
    ap.add_argument("--rounds", type=int, default=2, help="emulate/direct pairs (default 2)")
    ap.add_argument("--slots", default="1,2", help="comma list (default 1,2)")
    args = ap.parse_args()
    print(f"default conv sweep, n={args.n}; default --concurrency {DEFAULT_LOCAL_CONCURRENCY}")
    means: dict[int, float] = {}
    for slots in [int(x) for x in args.slots.split(",")]:
        ours, direct = [], []
        with local_server(slots=slots) as url, tempfile.TemporaryDirectory() as tmp:
            first = Path(tmp, "tape-0.json")
            for r in range(args.rounds):
                tape = Path(tmp, f"tape-{r}.json")
                ours.append(run_emulate(url, slots, args.n, Path(tmp, f"run-{r}"), tape))
                direct.append(asyncio.run(run_direct(url, requests_of(first), slots)))
                print(
                    f"  slots {slots}, round {r + 1}: emulate {ours[-1][0]:.1f} cases/min "
                    f"(server busy {ours[-1][1]:.0%}), direct {direct[-1][0]:.1f} "
                    f"(busy {direct[-1][1]:.0%})",
                    flush=True,
                )
        mine = statistics.fmean(c for c, _ in ours)
        theirs = statistics.fmean(c for c, _ in direct)
        means[slots] = mine
        print(
            f"slots {slots}: emulate {mine:.1f}, direct {theirs:.1f} cases/min: "
            f"{mine / theirs:.2f}x"
        )
    top = max(means, key=means.__getitem__)
    print(f"most cases per minute at {top} slots (the default is {DEFAULT_LOCAL_CONCURRENCY})")


if __name__ == "__main__":
    main()
