"""Live throughput of the embedded default: cases per minute at several concurrencies.

    python bench/throughput.py [--n 3] [--concurrency 1,2,4]

Each concurrency gets its own llama-server with that many slots (started before
the clock starts, so the figures are steady-state); the default conv sweep runs
against it in completion mode. Prints one line per concurrency.
"""

import argparse
import tempfile
import time

import emulate
from emulate.local import local_server
from emulate.model import LOCAL_MODEL_NAME


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="cases per grid cell (default 3)")
    ap.add_argument("--concurrency", default="1,2,4", help="comma list (default 1,2,4)")
    args = ap.parse_args()
    for c in [int(x) for x in args.concurrency.split(",")]:
        t0 = time.perf_counter()
        with local_server(slots=c) as url, tempfile.TemporaryDirectory() as out:
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = emulate.run(
                "conv",
                n=args.n,
                model=LOCAL_MODEL_NAME,
                base_url=url,
                mode="completion",
                extra_body={"cache_prompt": False},
                concurrency=c,
                out=f"{out}/run",
                progress=False,
            )
            wall = time.perf_counter() - t1
        print(
            f"concurrency {c}: {result.done} cases in {wall:.1f} s = "
            f"{60 * result.done / wall:.0f} cases/min "
            f"(server start {startup:.1f} s, accuracy {result.accuracy:.1%})",
            flush=True,
        )


if __name__ == "__main__":
    main()
