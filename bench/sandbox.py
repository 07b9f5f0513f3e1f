"""Sandbox throughput on the CRUXEval set: programs per second, cache off.

    python bench/sandbox.py [--items tests/data/published/cruxeval/cruxeval.jsonl] [--workers 2]

Runs every item's program (code + print(repr(f(input)))) through the warm pool (one
fork server in one bubblewrap, emulate/sandbox/pool.py) and, as the reference in the same
run, through one bubblewrap and one fresh interpreter per program
(EMULATE_SANDBOX_POOL=0), and checks that both print the same. Goal: >= 100
programs/s with the pool on 2 cores.

Then, as a user sees it: `emulate cases program -P items=...` as a whole process with
a cold cache (a fresh EMULATE_CACHE each time), items/s, median of 3. Goal: >= 100.
It was ~55 when every item ran under both hash seeds (1,600 programs); items now run
under the second seed only where their code could hang on it (probes/cruxeval.py,
may_vary: 6 of the 800). On 2 cores shared with another engineer's test runs (load
3.8-4.9), same runs interleaved, cases' JSONL byte-identical before and after:
before 51.9, 47.7, 68.5 items/s (median 51.9); after 89.2, 89.2, 89.5 (median 89.2).
At load ~2: before 83.5, 74.2, 75.3 (median 75.3); after 100.5, 83.2, 83.0 (median
83.2); this bench after, at load ~3: 143.1. Where the time goes (cProfile, perf): the
sandbox's programs, in the kernel (fork, copy-on-write faults, exit) more than in
Python; the command's own start and writing the cache take under a second.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emulate import sandbox
from emulate.sandbox import pool
from probes.cruxeval import item_program, load_items

PUBLISHED = Path(__file__).resolve().parents[1] / "tests" / "data" / "published"
DEFAULT = PUBLISHED / "cruxeval" / "cruxeval.jsonl"


def timed(programs: list[sandbox.Program], workers: int) -> tuple[float, list[sandbox.Result]]:
    start = time.perf_counter()
    results = sandbox.run_many(programs, workers=workers)
    return len(programs) / (time.perf_counter() - start), results


def command_rate(items: str, runs: int = 3) -> float:
    """`emulate cases program -P items=...` with a cold cache: items/s, median of runs."""
    count = sum(1 for line in Path(items).read_text().splitlines() if line.strip())
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "emulate", "cases", "program", "-P", f"items={items}"],
                env={**os.environ, "EMULATE_CACHE": cache},
                stdout=subprocess.DEVNULL,
                check=True,
            )
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", default=str(DEFAULT), help="CRUXEval JSONL")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    programs = [item_program(it) for it in load_items(args.items)]
    print(f"{len(programs)} programs, isolation {sandbox.isolation()}, workers {args.workers}")
    os.environ[pool.OPT_OUT] = "0"
    cold, cold_results = timed(programs, args.workers)
    print(f"  one bubblewrap per program   {cold:6.1f} programs/s")
    del os.environ[pool.OPT_OUT]
    warm, warm_results = timed(programs, args.workers)
    same = sum(
        (w.stdout, w.stderr, w.exit_code) == (c.stdout, c.stderr, c.exit_code)
        for w, c in zip(warm_results, cold_results, strict=True)
    )
    ok = sum(r.ok for r in warm_results)
    print(f"  warm pool (fork server)      {warm:6.1f} programs/s  ({ok} ok)")
    print(f"  ratio {warm / cold:.1f}x; same output for {same} of {len(programs)}")
    print(f"  goal >= 100 programs/s: {'met' if warm >= 100 else 'NOT met'}")
    rate = command_rate(args.items)
    print(f"  emulate cases program, cold cache {rate:6.1f} items/s (median of 3)")
    print(f"  goal >= 100 items/s: {'met' if rate >= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
