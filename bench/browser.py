"""The report's case browser at size: 2 models x N real conv cases (chat prompts as
sent, answers as a model writes them), then the page in Debian's chromium.

    python bench/browser.py [--cases 20000] [--models 2]

Prints the report's time to write, report.html's size (and per 1,000 cases), the
page's time to open (navigation to the case table drawn) and to filter to one grid
cell, each the median of 3 in a fresh page. Goal: open and filter under 2 s at
2 x 20,000.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import emulate  # noqa: E402
from emulate.case import Answer, Row, Score  # noqa: E402


def journals(base: Path, cases: int, models: int) -> list[Path]:
    made = emulate.cases("conv", {"size": list(range(3, 13)), "kernel": [2, 3]}, n=cases // 20,
                         mode="chat", model="gpt-4o-mini")  # fmt: skip
    folders = []
    for m in range(models):
        rng = np.random.default_rng(m)
        folder = base / f"model-{m}"
        folder.mkdir()
        with open(folder / "journal.jsonl", "w") as f:
            for case in made:
                right = bool(rng.random() < 1 / (1 + np.exp(case.params["size"] - 6 - m)))
                out = (
                    case.truth.output
                    if right
                    else [int(x) + 1 for x in np.ravel(case.truth.output)]
                )
                text = f"The output is:\n\n```\n{json.dumps(out)}\n```"
                score = Score(bool(right), {"cell_acc": 1.0 if right else 0.0},
                              None if right else "wrong_values", None if right else "cells differ",
                              out)  # fmt: skip
                row = Row(f"r{m}", f"model-{m}", "api.example.com", "chat", case,
                          Answer(text, None, 300, 40, 0.5, "stop"), score)  # fmt: skip
                f.write(row.to_line() + "\n")
        folders.append(folder)
    return folders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20000, help="cases per model")
    ap.add_argument("--models", type=int, default=2)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folders = journals(Path(tmp), args.cases, args.models)
        start = time.perf_counter()
        rep = emulate.report(folders, Path(tmp) / "report")
        written = time.perf_counter() - start
        size = rep.html.stat().st_size
        total = args.cases * args.models
        print(f"{args.models} x {args.cases:,} conv cases:")
        print(f"  emulate report        {written:6.2f} s")
        per = size / total * 1000 / 1e6
        print(f"  report.html           {size / 1e6:6.1f} MB ({per:.2f} MB per 1,000 cases)")
        opened, filtered = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for _ in range(3):
                page = browser.new_page()
                t = time.perf_counter()
                page.goto(rep.html.as_uri())
                page.wait_for_selector("#case-count")
                opened.append(time.perf_counter() - t)
                before = page.inner_text("#case-count")
                t = time.perf_counter()
                page.select_option("#filter-p-size", "7")
                page.wait_for_function(
                    f"document.getElementById('case-count').innerText !== {before!r}"
                )
                filtered.append(time.perf_counter() - t)
                page.close()
            browser.close()
        print(f"  open in chromium      {statistics.median(opened):6.2f} s (median of 3)")
        print(f"  filter to size=7      {statistics.median(filtered):6.2f} s (median of 3)")
        both = statistics.median(opened) + statistics.median(filtered)
        print(f"  open and filter       {both:6.2f} s (goal < 2 s)")


if __name__ == "__main__":
    main()
