"""Sandbox throughput on the CRUXEval set: programs per second.

    python bench/sandbox.py [--items ../shared/data/cruxeval.jsonl] [--workers 1,2]

Runs every item's program (code + print(repr(f(input)))) through the sandbox with
the cache off, once per worker count, and prints programs per second and the
isolation in force (bwrap, netns or none).
"""

import argparse
import time
from pathlib import Path

from emulate import sandbox
from probes.cruxeval import item_program, load_items

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cruxeval.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", default=str(DEFAULT), help="CRUXEval JSONL")
    ap.add_argument("--workers", default="1,2", help="comma list (default 1,2)")
    args = ap.parse_args()
    programs = [item_program(it) for it in load_items(args.items)]
    print(f"{len(programs)} programs, isolation {sandbox.isolation()}")
    for w in [int(x) for x in args.workers.split(",")]:
        start = time.perf_counter()
        results = sandbox.run_many(programs, workers=w)
        wall = time.perf_counter() - start
        ok = sum(r.ok for r in results)
        print(f"workers {w}: {wall:.1f} s, {len(programs) / wall:.1f} programs/s ({ok} ok)")


if __name__ == "__main__":
    main()
