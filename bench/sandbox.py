"""Sandbox throughput on the CRUXEval set: programs per second, cache off.

    python bench/sandbox.py [--items tests/data/published/cruxeval/cruxeval.jsonl] [--workers 2]

Runs every item's program (code + print(repr(f(input)))) through the warm pool (one
fork server in one bubblewrap, emulate/sandbox/pool.py) and, as the reference in the same
run, through one bubblewrap and one fresh interpreter per program
(EMULATE_SANDBOX_POOL=0), and checks that both print the same. Goal: >= 100
programs/s with the pool on 2 cores.
"""

import argparse
import os
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


if __name__ == "__main__":
    main()
