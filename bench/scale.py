"""emulate at research scale, against an endpoint that answers at once (nginx), so
every second measured is spent in the client. Whole processes, timed from outside.

    python bench/scale.py throughput [--cases 2000] [--rounds 3]
    python bench/scale.py tape [--sizes 1000,2000,5000,10000] [--rounds 3]
    python bench/scale.py memory [--cases 100000]
    python bench/scale.py batch [--cases 10000] [--rounds 3]
    python bench/scale.py all

throughput: `emulate run conv` (chat, --concurrency 64) against a bare AsyncOpenAI +
  semaphore loop (bench/bare.py) sending as many requests; alternating runs, the
  median of each. Goal: emulate >= 2x the bare loop.
tape: the same run live, recording a cassette, and replaying it with no server, at
  each size. Goals at the largest: record >= 0.8x live, replay >= 1x live; per-case
  cost flat from the smallest size to the largest (linear, not quadratic).
memory: peak RSS of a 100,000-case run and of its --dry-run, and the dry run's time.
  Goals: <= 250 MB each, dry run < 10 s.
batch: the same run live, and as a batch: `batch export`, `batch execute`
  (concurrency 64) and `batch score`, each timed, with the scoring's peak
  RSS. The batch path's three steps together against the live run, which does the
  same work in one process.
Needs nginx (apt-get install nginx-light).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from endpoint import fixed_endpoint

HERE = Path(__file__).resolve().parent
EMULATE = [sys.executable, "-m", "emulate"]
CONV = ["conv", "-P", "dims=1", "-P", "size=5", "-P", "kernel=2", "-P", "values=9",
        "--mode", "chat", "--model", "bench", "--concurrency", "64", "--no-progress"]  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({status}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def emulate_run(url: str, cases: int, out: Path, *extra: str) -> list[str]:
    return [*EMULATE, "run", *CONV, "--n", str(cases), "--base-url", url, "--out", str(out),
            *extra]  # fmt: skip


def throughput(cases: int, rounds: int) -> float:
    bare, ours = [], []
    with fixed_endpoint() as url, tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            bare.append(timed([sys.executable, str(HERE / "bare.py"), url, "--cases", str(cases),
                               "--concurrency", "64"])[0])  # fmt: skip
            ours.append(timed(emulate_run(url, cases, Path(tmp) / f"r{i}"))[0])
    b, e = statistics.median(bare), statistics.median(ours)
    print(f"throughput, {cases} cases at concurrency 64 (median of {rounds}, whole process):")
    print(f"  bare AsyncOpenAI loop  {b:6.2f} s  {cases / b:6.0f} cases/s")
    print(f"  emulate run            {e:6.2f} s  {cases / e:6.0f} cases/s")
    print(f"  ratio: emulate is {b / e:.2f}x the bare loop (goal >= 2x)")
    return b / e


def tape(sizes: list[int], rounds: int) -> tuple[float, float]:
    rows = []
    dead = "http://127.0.0.1:9/v1"  # a replay that dialled the server would fail
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with fixed_endpoint() as url:
            for n in sizes:
                live, rec, rep = [], [], []
                for i in range(rounds):  # alternating, each round a fresh cassette
                    live.append(timed(emulate_run(url, n, tmp / f"live{n}-{i}"))[0])
                    tape_file = str(tmp / f"c{n}-{i}.json")
                    rec.append(timed(emulate_run(url, n, tmp / f"rec{n}-{i}", "--record",
                                                 tape_file))[0])  # fmt: skip
                    rep.append(timed(emulate_run(dead, n, tmp / f"rep{n}-{i}", "--replay",
                                                 tape_file))[0])  # fmt: skip
                rows.append([n, *(statistics.median(x) for x in (live, rec, rep))])
    print(f"record and replay (whole process, median of {rounds}; ratios are speeds: "
          "live time / this time):")  # fmt: skip
    print(f"  {'cases':>6} {'live s':>7} {'record s':>8} {'replay s':>8} "
          f"{'record':>7} {'replay':>7} {'ms/case rec':>11} {'ms/case rep':>11}")  # fmt: skip
    for n, live, rec, rep in rows:
        print(f"  {n:>6} {live:7.2f} {rec:8.2f} {rep:8.2f} {live / rec:6.2f}x {live / rep:6.2f}x"
              f" {1000 * rec / n:11.3f} {1000 * rep / n:11.3f}")  # fmt: skip
    n0, _, rec0, rep0 = rows[0]
    n1, live1, rec1, rep1 = rows[-1]
    print(
        f"  at {n1}: record {live1 / rec1:.2f}x live (goal >= 0.8x), "
        f"replay {live1 / rep1:.2f}x live (goal >= 1x)"
    )
    print(
        f"  growth {n0} -> {n1} cases ({n1 / n0:.0f}x): record time x{rec1 / rec0:.1f}, "
        f"replay time x{rep1 / rep0:.1f} (linear: about x{n1 / n0:.0f} or less)"
    )
    return live1 / rec1, live1 / rep1


def memory(cases: int) -> tuple[float, float, float]:
    with fixed_endpoint() as url, tempfile.TemporaryDirectory() as tmp:
        dry_s, dry_mb = timed(emulate_run(url, cases, Path(tmp) / "dry", "--dry-run"))
        run_s, run_mb = timed(emulate_run(url, cases, Path(tmp) / "run"))
    print(f"memory, {cases} cases (peak RSS of the whole process):")
    print(f"  --dry-run  {dry_mb:6.0f} MB  {dry_s:6.1f} s   (goals <= 250 MB, < 10 s)")
    print(f"  run        {run_mb:6.0f} MB  {run_s:6.1f} s   (goal <= 250 MB)")
    return dry_mb, dry_s, run_mb


def batch(cases: int, rounds: int) -> float:
    live, export, execute, score, score_mb = [], [], [], [], []
    with fixed_endpoint() as url, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(rounds):
            live.append(timed(emulate_run(url, cases, tmp / f"live{i}"))[0])
            requests, output, run = tmp / f"req{i}.jsonl", tmp / f"out{i}.jsonl", tmp / f"b{i}"
            argv = emulate_run(url, cases, run, "--file", str(requests))
            argv[argv.index("run")] = "batch"
            argv.insert(argv.index("batch") + 1, "export")
            export.append(timed([a for a in argv if a != "--no-progress"])[0])
            execute.append(timed([*EMULATE, "batch", "execute", str(requests), "--base-url", url,
                                  "--out", str(output), "--concurrency", "64",
                                  "--no-progress"])[0])  # fmt: skip
            s, mb = timed([*EMULATE, "batch", "score", str(output), "--config",
                           str(run / "run.json"), "--no-progress"])  # fmt: skip
            score.append(s)
            score_mb.append(mb)
    m = [statistics.median(x) for x in (live, export, execute, score)]
    total = sum(m[1:])
    print(f"batch path, {cases} cases (whole processes, median of {rounds}):")
    print(f"  live run             {m[0]:6.2f} s")
    print(f"  batch export         {m[1]:6.2f} s")
    print(f"  batch execute        {m[2]:6.2f} s   ({m[0] / m[2]:.2f}x the live run's speed)")
    print(f"  batch score          {m[3]:6.2f} s  {1000 * m[3] / cases:.3f} ms/case, "
          f"peak {statistics.median(score_mb):.0f} MB")  # fmt: skip
    print(f"  the three steps      {total:6.2f} s   ({m[0] / total:.2f}x the live run's speed)")
    return m[0] / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["throughput", "tape", "memory", "batch", "all"])
    ap.add_argument("--cases", type=int, help="cases (throughput 2000, memory 100000, batch 10000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each, alternating (default 3)")
    ap.add_argument("--sizes", default="1000,2000,5000,10000", help="tape: comma list")
    args = ap.parse_args()
    if args.what in ("throughput", "all"):
        throughput(args.cases or 2000, args.rounds)
    if args.what in ("tape", "all"):
        tape([int(x) for x in args.sizes.split(",")], args.rounds)
    if args.what in ("memory", "all"):
        memory(args.cases or 100_000)
    if args.what in ("batch", "all"):
        batch(args.cases or 10_000, args.rounds)


if __name__ == "__main__":
    main()
