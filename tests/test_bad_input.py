"""Each bad input a new user tried: one line naming it and what to do, exit code 2,
no traceback, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulate.cli.main import main

from .conftest import CASSETTES, journal_row, write_journal

CONV_RUN = json.loads((CASSETTES / "conv" / "completion" / "run.json").read_text())["config"]


def _config(tmp: Path, **changes) -> str:
    config = json.loads(json.dumps(CONV_RUN))
    for key, value in changes.items():
        if key.startswith("model."):
            config["model"][key[6:]] = value
        else:
            config[key] = value
    path = tmp / f"bad-run-{len(list(tmp.glob('bad-run-*')))}.json"
    path.write_text(json.dumps({"config": config}))
    return str(path)


def _items(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


def _cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, what the one line must say)."""
    ro = Path("/proc/emulate-cannot-write")  # even root cannot create this
    a_file = tmp / "a-file"
    a_file.write_text("x")
    binary = _items(tmp, "bin.json", b"\x00\x01\x02PK\x03\x04")
    latin1 = _items(tmp, "latin1.json", '{"examples": [{"input": "( [ é"}]}'.encode("latin-1"))
    e5 = _items(tmp, "e5.json", b'{"examples": 5}')
    num = _items(tmp, "num.json", b'{"examples": [{"input": 5}]}')
    c5 = _items(tmp, "c5.jsonl", b'{"code": 5, "input": "1"}')
    i1 = _items(tmp, "i1.jsonl", b'{"code": "def f(x):\\n    return x", "input": [1]}')
    return {
        "temperature nan": (["run", "conv", "--temperature", "nan"], "--temperature nan"),
        "temperature -5": (["run", "conv", "--temperature", "-5"], "--temperature -5.0"),
        "max-tokens 0": (["run", "conv", "--max-tokens", "0"], "--max-tokens 0"),
        "max-tokens -1": (["run", "conv", "--max-tokens", "-1"], "--max-tokens -1"),
        "top-logprobs -1": (["run", "conv", "--top-logprobs", "-1"], "--top-logprobs -1"),
        "concurrency 0": (["run", "conv", "--concurrency", "0"], "--concurrency 0"),
        "cases n 0": (["cases", "conv", "--n", "0"], "--n 0"),
        "repeated -P": (["run", "conv", "-P", "size=4", "-P", "size=5"], "-P size is given twice"),
        "out is a file": (["run", "conv", "--out", str(a_file)], "is a file"),
        "out read-only": (["run", "conv", "--out", str(ro)], "cannot write there"),
        "items binary": (["run", "brackets", "-P", f"items={binary}"], "binary file"),
        "items not utf-8": (["run", "brackets", "-P", f"items={latin1}"], "not UTF-8"),
        "items examples 5": (
            ["run", "brackets", "-P", f"items={e5}"],
            "expected a list of items",
        ),
        "items input a number": (
            ["run", "brackets", "-P", f"items={num}"],
            "'input' text",
        ),  # fmt: skip
        "items code 5": (
            ["run", "program", "-P", f"items={c5}"],
            "'code' and 'input' as text",
        ),  # fmt: skip
        "items input [1]": (
            ["run", "program", "-P", f"items={i1}"],
            "'code' and 'input' as text",
        ),  # fmt: skip
        "config n '3'": (["run", "--config", _config(tmp, n="3")], "--n '3'"),
        "config grid list": (["run", "--config", _config(tmp, grid=[1])], "grid [1]"),
        "config timeout soon": (
            ["run", "--config", _config(tmp, **{"model.timeout_s": "soon"})],
            "timeout_s 'soon'",
        ),
        "config unknown field": (
            ["run", "--config", _config(tmp, **{"model.tempreature": 1})],
            "unknown fields: tempreature",
        ),
        "config a folder": (["run", "--config", str(tmp)], "is a folder"),
        "extra body a list": (["run", "conv", "--extra-body", "[1]"], "--extra-body"),
        "max-errors word": (["run", "conv", "--max-errors", "lots"], "--max-errors 'lots'"),
        "retry without resume": (["run", "conv", "--retry-errors"], "add --resume"),
    }


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    failures = []
    for name, (argv, expected) in _cases(tmp_path).items():
        argv = [*argv, "--out", str(out)] if argv[0] == "run" and "--out" not in argv else argv
        code = main(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or expected not in err or "Traceback" in err:
            failures.append(f"{name}: exit {code}, stderr {err!r}")
        if out.exists():
            failures.append(f"{name}: wrote {out}")
    assert not failures, "\n".join(failures)


def _run_folder(tmp: Path, covariates: bool = True) -> Path:
    rows = [journal_row(f"c{i}", {"size": 3}, i % 2 == 0) for i in range(4)]
    if covariates:
        for r in rows:
            r["case"]["covariates"] = {"lines": 3}
    return write_journal(tmp / "run", rows)


def test_export_to_a_folder_is_refused(tmp_path, capsys):
    run = _run_folder(tmp_path)
    assert main(["export", str(run), "--format", "csv", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_parquet_of_a_probe_without_covariates_exports(tmp_path):
    import pyarrow.parquet as pq

    run = _run_folder(tmp_path, covariates=False)
    assert main(["export", str(run), "--format", "parquet"]) == 0
    table = pq.read_table(run / "results.parquet")
    assert table.num_rows == 4 and table.column("case").to_pylist()[0]["covariates"] is None


@pytest.mark.parametrize("command", ["report", "export", "rescore", "resume"])
def test_a_journal_line_that_is_json_but_not_a_row(tmp_path, capsys, command):
    run = _run_folder(tmp_path)
    with open(run / "journal.jsonl", "a") as f:
        f.write('{"hello": "world"}\n')
    (run / "run.json").write_text(json.dumps({"config": CONV_RUN}))
    before = sorted(p.name for p in run.iterdir())
    argv = {
        "report": ["report", str(run)],
        "export": ["export", str(run), "--format", "csv"],
        "rescore": ["rescore", str(run)],
        "resume": ["run", "--config", str(run / "run.json"), "--out", str(run), "--resume",
                   "--replay", str(CASSETTES / "conv" / "completion" / "cassette.json")],
    }[command]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "line 5 is JSON but not an emulate journal row" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == before
