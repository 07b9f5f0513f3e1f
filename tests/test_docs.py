"""README.md's complete examples run as written (as sqlite-utils checks its docs):
"Write your own probe" as a script, "Test a model in pytest" as the sample project."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks(heading: str) -> list[str]:
    """The fenced python blocks of one README section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n### {heading}\n")
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i != -1]
    section = text[start : min(ends, default=len(text))]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _script(tmp_path: Path, *blocks: str) -> subprocess.CompletedProcess:
    script = tmp_path / "my_probe.py"
    script.write_text("\n".join(blocks))
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )


def test_write_your_own_probe_builds_its_cases(tmp_path):
    probe, _run = _blocks("Write your own probe")
    done = _script(tmp_path, probe)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "6 cases; the first prompt:"  # digits 1, 2, 3 and n=2
    # Completion mode: three worked examples, each "a + b = sum", then the question.
    shown = lines[1:]
    assert len(shown) == 7 and shown[1] == shown[3] == shown[5] == ""
    for example in shown[0:6:2]:
        a, b, total = (int(x) for x in re.fullmatch(r"(\d) \+ (\d) = (\d+)", example).groups())
        assert a + b == total
    assert re.fullmatch(r"\d \+ \d =", shown[6])


def test_write_your_own_probe_scores_a_right_sum_right_and_a_wrong_one_wrong(tmp_path):
    probe, _run = _blocks("Write your own probe")
    check = """
from emulate.case import Answer
case = cases[0]
for text in (f"The sum is {case.truth.total}.", str(case.truth.total + 1), "no idea"):
    s = AddProbe().score(case, Answer(text))
    print(s.correct, s.error_type, s.metrics["abs_err"])
"""
    done = _script(tmp_path, probe, check)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == [
        "True None 0",
        "False wrong 1",
        "False unparseable None",
    ]


@pytest.mark.live
def test_write_your_own_probe_runs_on_the_embedded_default(tmp_path):
    done = _script(tmp_path, *_blocks("Write your own probe"))
    assert done.returncode == 0, done.stderr
    right, total = re.search(r"(\d+) of (\d+) sums right", done.stdout).groups()
    assert int(total) == 10 and 0 <= int(right) <= 10


def test_the_pytest_example_is_the_sample_project():
    (shown,) = _blocks("Test a model in pytest")
    assert shown == (ROOT / "tests" / "sample_project" / "test_gemma.py").read_text()
