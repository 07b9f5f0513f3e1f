"""The example plugin (plugins/emulate-sql) installs with pip from its folder, is found
through the entry-point group `emulate.probes`, and its cassette, recorded from the
embedded model, replays offline. Installed into a temporary folder on PYTHONPATH, so
the test environment itself is left as it was."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emulate.testing import assert_reproduces

from .conftest import CASSETTES, ROOT

PLUGIN = ROOT / "plugins" / "emulate-sql"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources, and
    # the checkout may be read-only (and is no place for them).
    source = tmp_path_factory.mktemp("plugin") / PLUGIN.name
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
           "--no-build-isolation", "--target", str(target), str(source)]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0 and "setuptools" in done.stderr:
        pytest.skip("building the plugin needs setuptools in this environment")
    assert done.returncode == 0, done.stderr
    return target


def _emulate(site: Path, *args: str, extra: Path | None = None):
    paths = [str(site)] + ([str(extra)] if extra else [])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(paths)}
    cmd = [sys.executable, "-m", "emulate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def test_the_plugin_is_listed_with_its_package(site):
    done = _emulate(site, "probes")
    assert done.returncode == 0, done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("sql")]
    assert line.startswith("sql [emulate-sql]: what a SQL query returns")


def test_its_cassette_replays_offline_to_the_recorded_results(site, tmp_path):
    folder = CASSETTES / "sql" / "completion"
    done = _emulate(site, "run", "--config", str(folder / "run.json"), "--replay",
                    str(folder / "cassette.json"), "--out", str(tmp_path / "r"),
                    "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_reproduces(tmp_path / "r" / "results.csv", folder / "results.csv")


def test_two_packages_claiming_one_name_is_an_error_naming_both(site, tmp_path):
    # A second installed distribution (its metadata is all entry points need).
    info = tmp_path / "other" / "other_sql-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-sql\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[emulate.probes]\nsql = other_sql:Probe\n")
    done = _emulate(site, "probes", extra=tmp_path / "other")
    assert done.returncode == 2
    assert "emulate-sql" in done.stderr and "other-sql" in done.stderr
    assert done.stderr.count("\n") == 1  # one line
