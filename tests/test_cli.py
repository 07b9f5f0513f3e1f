"""The CLI: help that teaches, JSONL cases, dry runs, and exit code 2 on bad input."""

import json
import subprocess
import sys

import pytest

from emulate.cli.main import build_parser, main
from emulate.registry import PROBES

from .conftest import CASSETTES


def _sub_parsers():
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices


def test_every_command_has_help_and_the_readme_mentions_it():
    readme = (CASSETTES.parent / "README.md").read_text()
    for name, sub in _sub_parsers().items():
        assert sub.description or sub.format_help()
        assert f"emulate {name}" in readme, f"README.md does not show `emulate {name}`"
    for action in _sub_parsers()["run"]._actions:
        assert action.help, f"run {action.option_strings} has no help"


def test_probes_lists_parameters_with_ranges(capsys):
    assert main(["probes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PROBES)
    assert out.count("\n") == len(PROBES) and "size=2..16" in out
    assert main(["probes", "-v"]) == 0
    out = capsys.readouterr().out
    assert "-P size=2..16 (default 2,3,4,5,6,7,8,9)" in out
    conv = out.split("\nbrackets")[0]
    assert "--n 4 cases per grid cell by default" in conv


def test_cases_writes_one_json_case_per_line(capsys):
    assert main(["cases", "conv", "-P", "size=4", "-P", "kernel=2,3", "-P", "dims=1,2",
                 "-P", "values=1,9", "--n", "2"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 2 * 2 * 2  # kernel x dims x values x n
    case = json.loads(lines[0])
    assert {"id", "params", "prompt", "inputs", "truth"} <= case.keys()
    assert case["params"]["size"] == 4


def test_dry_run_counts_cases_and_tokens_offline(capsys):
    assert main(["run", "conv", "-P", "dims=1", "--n", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "conv: 32 cases" in out and "prompt tokens" in out  # 8 sizes x 2 kernels x 2
    assert main(["run", "conv", "--dry-run"]) == 0
    assert "conv: 64 cases" in capsys.readouterr().out  # conv's own n: 4 a cell


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "nope"], "unknown probe 'nope'"),
        (["run", "conv", "-P", "size=99"], "size=99 is out of range; use an integer from 2 to 16"),
        (["run", "conv", "-P", "sise=3"], "no parameter 'sise'"),
        (["run", "conv", "-P", "size"], "write key=value"),
        (
            ["run", "conv", "-P", "size=3,8", "-P", "kernel=5", "-P", "dims=1", "-P", "values=9"],
            "1 of 2 grid cells cannot exist: size=3 kernel=5 values=9 (the kernel spans 5 "
            "cells but the padded input has 3) (add --skip-impossible to run the others)",
        ),
        (["run", "conv", "--n", "0"], "--n 0: must be a whole number of at least 1"),
        (["run", "conv", "--extra-body", "{bad"], "--extra-body is not valid JSON"),
        (["run", "conv", "--replay", "/no/such.json"], "no such cassette"),
        (["run", "--config", "/no/run.json"], "no such file"),
        (["run"], "name a probe"),
        (["cases", "conv", "-P", "dims=3"], "dims=3 is out of range"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "run" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_config_fixes_the_run(capsys):
    config = str(next(CASSETTES.glob("conv/*/run.json")))
    assert main(["run", "--config", config, "--n", "5", "--dry-run"]) == 2
    assert "cannot change it" in capsys.readouterr().err


def test_the_console_script_runs():
    done = subprocess.run(
        [sys.executable, "-m", "emulate", "run", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--replay" in done.stdout and "examples:" in done.stdout


def test_run_replays_and_prints_the_summary(capsys, tmp_path):
    folder = CASSETTES / "conv" / "completion"
    argv = ["run", "--config", str(folder / "run.json"), "--replay", str(folder / "cassette.json")]
    assert main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "dims=1" in out and "wrong answers:" in out
    assert (tmp_path / "o" / "results.csv").exists()


def test_the_readme_builds_the_embedded_server_portably():
    from emulate.local import PORTABLE_CMAKE_ARGS, _why

    first = (CASSETTES.parent / "README.md").read_text().split("```")[1]
    assert f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}"' in first and "-DGGML_NATIVE=OFF" in first
    assert "illegal instruction" in _why(-4) and PORTABLE_CMAKE_ARGS in _why(-4)
    assert _why(1) == ""


def test_cases_defaults_to_the_mode_run_would_send(capsys):
    assert main(["cases", "conv", "--n", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["mode"] == "completion"
    assert main(["cases", "conv", "--n", "1", "--model", "gpt-4o-mini"]) == 0
    case = json.loads(capsys.readouterr().out.splitlines()[0])
    assert case["mode"] == "chat" and isinstance(case["prompt"], list)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["probes"], ["probes", "-v"], ["cases", "conv", "-P", "size=4", "--n", "2"]],
)
def test_commands_that_ask_no_model_import_no_sdk(argv):
    """Start-up: --help, probes and cases load neither the openai SDK nor scipy,
    datasets or matplotlib (they cost a second before anything is printed)."""
    import subprocess
    import sys

    heavy = ("openai", "aiohttp", "scipy", "datasets", "matplotlib", "pyarrow", "torch")
    script = (
        "import sys\nfrom emulate.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})), "
        "file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_the_package_loads_its_names_on_use_and_keeps_functions_over_modules():
    import subprocess
    import sys

    # Functions and the modules that hold them have different names (emulate.report is
    # the function, emulate.analysis.report its module): importing one never hides the other.
    script = (
        "import sys, emulate\n"
        "assert 'openai' not in sys.modules and 'emulate.pipeline.runner' not in sys.modules\n"
        "import emulate.analysis.report, emulate.analysis.compare, emulate.pipeline.sweep\n"
        "assert callable(emulate.report)\n"
        "assert emulate.report.__module__ == 'emulate.analysis.report'\n"
        "assert emulate.sweep.__name__ == 'sweep' and callable(emulate.compare)\n"
        "assert set(emulate.__all__) <= set(dir(emulate))\n"
        "print(emulate.run.__module__, emulate.EmulateError.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["emulate.api", "EmulateError"]
