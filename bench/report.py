"""Analysis speed: load, summarise, fit breaking points and write a report.

    python bench/report.py [--cases 2000,20000] [--models 2]

Writes synthetic journals (conv parameters: dims, size, kernel, values; accuracy
falling with size) for each model, then times each stage of `emulate.analysis.report`
and `emulate.analysis.compare` and prints seconds per stage.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import emulate  # noqa: E402
from emulate import cost  # noqa: E402
from emulate.analysis.report import curves, run_info, summarise  # noqa: E402
from emulate.analysis.runs import load_runs  # noqa: E402
from tests.conftest import journal_row  # noqa: E402


def journals(base: Path, cases: int, models: int) -> list[Path]:
    rng = np.random.default_rng(0)
    grid = [(d, s, k, v) for d in (1, 2) for s in range(3, 11) for k in (1, 2, 3) for v in (1, 9)]
    folders = []
    for m in range(models):
        rows = []
        for i in range(cases):
            d, s, k, v = grid[i % len(grid)]
            p = 1 / (1 + np.exp(1.2 * (s - 5 - m)))
            params = {"dims": d, "size": s, "kernel": k, "values": v}
            rows.append(
                journal_row(f"{i:016x}", params, bool(rng.random() < p), model=f"model-{m}",
                            run_id=f"r{m}", metrics={"cell_acc": float(rng.random())})
            )  # fmt: skip
        folder = base / f"model-{m}"
        folder.mkdir()
        (folder / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        folders.append(folder)
    return folders


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    print(f"  {label:<28}{time.perf_counter() - start:8.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="2000,20000", help="cases per model, comma list")
    ap.add_argument("--models", type=int, default=2)
    args = ap.parse_args()
    for n in [int(x) for x in args.cases.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            folders = journals(Path(tmp), n, args.models)
            print(f"{n} cases x {args.models} models")
            runs = timed("load journals", lambda: load_runs(folders))  # noqa: B023
            timed("summary (all, axes, cells)", lambda: summarise(runs))  # noqa: B023
            timed("breaking points", lambda: curves(runs))  # noqa: B023
            timed("tokens and cost", lambda: run_info(runs, cost.load_prices()))  # noqa: B023
            timed("whole report", lambda: emulate.report(folders, Path(tmp) / "rep"))  # noqa: B023
            timed("compare", lambda: emulate.compare(folders[0], folders[1]))  # noqa: B023


if __name__ == "__main__":
    main()
