"""emulate export: flat CSV, nested JSONL, Parquet and saved datasets, typed."""

import json

import datasets
from hypothesis import given, settings
from hypothesis import strategies as st

import emulate
from emulate.analysis.export import nested_rows, unify
from emulate.case import Row
from emulate.cli.main import main

CHAT = "conv/chat-logprobs"  # its answers carry logprobs with top alternatives


def _journal(run):
    return [json.loads(line) for line in open(run / "journal.jsonl")]


def test_csv_is_flat_and_matches_results_csv(replayed, tmp_path):
    run = replayed(CHAT)
    out = emulate.export([run], "csv", tmp_path / "x.csv")
    assert out.read_text() == (run / "results.csv").read_text()


def test_jsonl_is_the_journal_as_written(replayed, tmp_path):
    run = replayed(CHAT)
    out = emulate.export([run], "jsonl", tmp_path / "x.jsonl")
    assert [json.loads(line) for line in out.read_text().splitlines()] == _journal(run)


def test_parquet_keeps_the_nesting_with_types(replayed, tmp_path):
    run = replayed(CHAT)
    ds = datasets.Dataset.from_parquet(str(emulate.export([run], "parquet", tmp_path / "x.pq")))
    journal = _journal(run)
    assert len(ds) == len(journal)
    f = ds.features
    assert f["case"]["params"]["size"].dtype == "int64"
    assert f["score"]["correct"].dtype == "bool"
    assert f["answer"]["logprobs"].feature["top"].feature["logprob"].dtype == "float64"
    first, row = journal[0], ds[0]
    assert row["case"]["id"] == first["case"]["id"]
    assert json.loads(row["case"]["truth"]) == first["case"]["truth"]
    assert row["case"]["messages"] == first["case"]["prompt"]
    top = first["answer"]["logprobs"][0]["top"]
    assert [(t["token"], t["logprob"]) for t in row["answer"]["logprobs"][0]["top"]] == [
        tuple(t) for t in top
    ]


def test_a_saved_dataset_loads_back(replayed, tmp_path, capsys):
    run = replayed("conv/completion")
    out = tmp_path / "ds"
    assert main(["export", str(run), "--format", "dataset", "--out", str(out)]) == 0
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 72 and ds[0]["case"]["prompt_text"]
    # Exporting again replaces it; an unrelated folder is never overwritten.
    assert main(["export", str(run), "--format", "dataset", "--out", str(out)]) == 0
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["export", str(run), "--format", "dataset", "--out", str(other)]) == 2
    assert (other / "keep.txt").exists()
    assert "not a saved dataset" in capsys.readouterr().err


def test_load_results_is_typed(replayed):
    ds = emulate.load_results(replayed("conv/completion"))
    assert ds.features["correct"].dtype == "bool"
    assert ds.features["size"].dtype == "int64"
    assert ds.features["cell_acc"].dtype == "float64"


def test_bad_input(replayed, tmp_path, capsys):
    conv, brackets = replayed(CHAT), replayed("brackets/complete")
    assert main(["export", str(conv), str(brackets), "--format", "csv",
                 "--out", str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert "needs runs of one probe" in capsys.readouterr().err
    assert main(["export", str(conv), str(conv), "--format", "csv"]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "csv"]) == 2
    assert "no journal.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


_value = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-1, 1) | st.text(max_size=3)
_value = (
    _value
    | st.lists(st.integers(0, 3), max_size=3)
    | st.dictionaries(st.text(max_size=2), st.integers())
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from("abc"), _value, min_size=1), min_size=1, max_size=8)
)
def test_unify_gives_arrow_one_type_per_key(rows):
    import pyarrow as pa

    # Without it, a column of bools and ints (or text and numbers) is refused.
    table = pa.Table.from_pylist(unify(rows))
    assert table.num_rows == len(rows)


def test_nested_rows_type_every_metric(replayed):
    rows = _journal(replayed("brackets/next_token"))
    ds = datasets.Dataset.from_list(nested_rows([Row.from_json(r) for r in rows]))
    assert ds.features["score"]["metrics"]["p_illegal"].dtype == "float64"
    assert ds.features["score"]["metrics"]["top_token"].dtype == "string"


def test_write_results_streams_the_journal_into_case_order(replayed, tmp_path):
    from emulate.analysis.results import RowTable, flat_row, to_csv, write_results

    run = replayed(CHAT)
    journal = _journal(run)
    order = [r["case"]["id"] for r in journal][::-1]
    stray = json.loads(json.dumps(journal[0]))
    stray["case"]["id"] = "not-in-order"
    # One pass over a generator; a case outside the order comes last.
    rows = [Row.from_json(r) for r in [stray, *journal]]
    table = write_results(tmp_path, order[1:], (r for r in rows))
    assert isinstance(table, RowTable)
    assert table.column("case_id") == [*order[1:], "not-in-order", order[0]]
    by_id = {r.case.id: flat_row(r) for r in rows}
    expected = [by_id[cid] for cid in table.column("case_id")]
    assert list(table) == expected and table[-1] == expected[-1] and table[1:3] == expected[1:3]
    assert (tmp_path / "results.csv").read_text() == to_csv(expected)


def test_a_row_table_tells_a_missing_column_from_a_none():
    from emulate.analysis.results import RowTable, columns

    table = RowTable()
    table.append({"case_id": "a", "x": None})
    table.append({"case_id": "b", "y": "short", "correct": True})
    table.append({"case_id": "c", "y": "short"})
    assert list(table) == [
        {"case_id": "a", "x": None},
        {"case_id": "b", "y": "short", "correct": True},
        {"case_id": "c", "y": "short"},
    ]
    assert table.column("y") == [None, "short", "short"] and table.column("z") == [None] * 3
    assert table[1]["y"] is table[2]["y"]  # a repeated short text is stored once
    assert list(table.take([2, 0])) == [{"case_id": "c", "y": "short"}, {"case_id": "a", "x": None}]
    assert columns(table) == columns(list(table))
