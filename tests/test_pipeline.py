"""The run pipeline's own parts: cases built on another core are the same cases."""

from __future__ import annotations

import subprocess
import sys

from emulate.pipeline.drive import Feed, case_builder
from emulate.probe import plan_cases
from emulate.registry import get_probe

from .conftest import ROOT


async def _all(feed: Feed) -> list:
    out = []
    while (case := await feed.take()) is not None:
        out.append(case)
    return out


def test_a_forked_builder_makes_the_same_cases_in_the_same_order():
    """In a process of its own, as the CLI runs: the builder forks only while the run
    is the process's one thread (a test process has others)."""
    script = """
import asyncio
from emulate.pipeline.drive import Feed, case_builder
from emulate.probe import plan_cases
from emulate.registry import get_probe
from tests.test_pipeline import _all

plan = plan_cases(get_probe("conv"), {"size": [4, 5], "kernel": [2]}, 300, 7, "chat")
assert len(plan) > 2 * plan.chunk  # large enough for the builder
with case_builder(plan) as builder:
    assert builder is not None
    forked = asyncio.run(_all(Feed(plan, {"x"}, builder)))
threaded = asyncio.run(_all(Feed(plan, set())))
assert forked == threaded and len(forked) == len(plan)
done = {c.id for c in threaded[::3]}  # resumed ids are skipped the same way
with case_builder(plan) as builder:
    again = asyncio.run(_all(Feed(plan, done, builder)))
assert again == [c for c in threaded if c.id not in done]
print("same", len(forked))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "same" and int(done.stdout.split()[1]) > 512


def test_no_builder_for_probes_that_build_through_the_sandbox_or_small_plans():
    program = plan_cases(get_probe("program"), {}, 300, 0, "completion")
    small = plan_cases(get_probe("conv"), {}, 1, 0, "chat")
    for plan in (program, small):
        with case_builder(plan) as builder:
            assert builder is None
