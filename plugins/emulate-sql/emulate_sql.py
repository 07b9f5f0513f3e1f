"""SQL: what does this query return on these tables? An emulate plugin probe.

The founding material's "GPT-3 as a database engineer": shown a small database as
the SQL that builds it, and a query, the model writes the result. Read top to
bottom: the tables (seeded), the queries, the truth (sqlite3), the prompt, the
parser, the scorer. A query with ORDER BY is scored as a list of rows; any other as
a multiset, since SQL promises no order without one.

Error types: api_error, empty, unparseable, wrong_rows (None when right).
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.extract import BLOCK, region
from emulate.probe import Param, Probe, covariate, metric
from emulate.prompt import Example, render

NAMES = ("Ada", "Ben", "Cy", "Dee", "Eve", "Finn", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lu")
CITIES = ("Oslo", "Lima", "Pune", "Riga")
ITEMS = ("book", "lamp", "pen", "mug", "desk")

# The query families, each a template over the drawn constants.
QUERIES = {
    "where": "SELECT name, age FROM people WHERE age > {age}",
    "order": "SELECT name, age FROM people ORDER BY age DESC, name",
    "group": "SELECT city, COUNT(*) FROM people GROUP BY city",
    "join": "SELECT p.name, o.item FROM people p JOIN orders o ON o.person_id = p.id "
    "WHERE o.amount >= {amount}",
    "aggregate": "SELECT SUM(amount), MAX(amount) FROM orders WHERE item = '{item}'",
}


@dataclass(frozen=True)
class Inputs:
    schema: str  # CREATE TABLE and INSERT statements
    query: str


@dataclass(frozen=True)
class Truth:
    rows: list  # each a list of column values, as sqlite3 returns them
    ordered: bool  # the query fixes the order (ORDER BY)


def database(rows: int, rng: np.random.Generator) -> str:
    """`rows` people and about as many orders, as the SQL that builds them."""
    lines = [
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, city TEXT);",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, person_id INTEGER, item TEXT, "
        "amount INTEGER);",
    ]
    names = rng.choice(NAMES, size=rows, replace=False)
    for i, name in enumerate(names, 1):
        age, city = int(rng.integers(18, 70)), CITIES[int(rng.integers(len(CITIES)))]
        lines.append(f"INSERT INTO people VALUES ({i}, '{name}', {age}, '{city}');")
    for j in range(1, rows + 1):
        person, item = int(rng.integers(1, rows + 1)), ITEMS[int(rng.integers(len(ITEMS)))]
        lines.append(
            f"INSERT INTO orders VALUES ({j}, {person}, '{item}', {int(rng.integers(1, 50))});"
        )
    return "\n".join(lines)


def execute(schema: str, query: str) -> list[list[Any]]:
    with sqlite3.connect(":memory:") as db:
        db.executescript(schema)
        return [list(r) for r in db.execute(query).fetchall()]


PARAMS = (
    Param("rows", (4, 8), "people in the table (and as many orders)", lo=2, hi=12),
    Param("query", tuple(QUERIES), "the query family", choices=tuple(QUERIES)),
    Param("shots", (1,), "worked examples (3-person databases) before the question", lo=0, hi=3),
)


class SqlProbe(Probe):
    name = "sql"
    version = 1
    Inputs = Inputs
    Truth = Truth
    summary = "what a SQL query returns on small seeded tables (truth from sqlite3)"
    params = PARAMS
    columns = (
        metric("exact", bool),
        metric("row_recall"),
        metric("row_precision"),
        covariate("result_rows"),
        covariate("ordered", bool),
    )
    default_mode = "chat"
    summary_axes = ("query",)

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: str) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        # Worked examples first, from the same stream: small databases, the same family.
        shots = []
        for _ in range(cell["shots"]):
            ex_schema, ex_query = database(3, rng), _query(cell["query"], rng)
            result = execute(ex_schema, ex_query)
            shots.append(Example(_question(ex_schema, ex_query), _fmt_rows(result)))
        schema = database(cell["rows"], rng)
        query = _query(cell["query"], rng)
        rows = execute(schema, query)
        ordered = "ORDER BY" in query.upper()
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Inputs(schema, query),
            truth=Truth(rows, ordered),
            prompt=render(
                mode,
                _question(schema, query),
                examples=shots,
                system=SYSTEM,
                cue="\nResult:",
                cue_space="",
                completion_answer=lambda out: "\n" + out,
            ),
            covariates={"result_rows": len(rows), "ordered": ordered},
            max_tokens=24 * (len(rows) + 2) + (0 if mode == "completion" else 200),
            stop=("\n\n",) if mode == "completion" else (),
        )

    def answer_text(self, case: Case) -> str:
        return _fmt_rows(case.truth.rows)

    def score(self, case: Case, answer: Answer) -> Score:
        return score(case, answer)


# --- the prompt ----------------------------------------------------------------------

SYSTEM = (
    "You are a SQLite database. Reply with the query's result only: one row per line, "
    "columns separated by ' | ', no header; '(no rows)' for an empty result."
)


def _fmt_row(row: Sequence[Any]) -> str:
    return " | ".join("NULL" if v is None else str(v) for v in row)


def _fmt_rows(rows: Sequence[Sequence[Any]]) -> str:
    return "\n".join(_fmt_row(r) for r in rows) or "(no rows)"


def _question(schema: str, query: str) -> str:
    return f"Database:\n{schema}\n\nQuery:\n{query};"


def _query(family: str, rng: np.random.Generator) -> str:
    return QUERIES[family].format(
        age=int(rng.integers(25, 60)),
        amount=int(rng.integers(10, 40)),
        item=ITEMS[int(rng.integers(len(ITEMS)))],
    )


# --- the parser ----------------------------------------------------------------------

_RULE = re.compile(r"^\|?\s*:?-{2,}")


def parse_rows(text: str) -> list[list[str]] | None:
    """The answer's rows: lines of `a | b` (a markdown table too, its rule and a
    header of column names dropped), found by the shared rules (fences, markers)."""
    body = region(text, BLOCK).strip()
    if not body:
        return None
    if body.lower().strip("() .") == "no rows":
        return []
    lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not _RULE.match(ln.strip())]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return rows or None


def _value(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text.strip("'\"")
    return int(number) if number.is_integer() else round(number, 6)


def _key(row: Sequence[Any]) -> tuple:
    return tuple(_value(str(v)) if v is not None else "NULL" for v in row)


# --- the scorer ----------------------------------------------------------------------


def score(case: Case, answer: Answer) -> Score:
    metrics = {"exact": False, "row_recall": None, "row_precision": None}
    if not answer.text.strip():
        return Score(False, metrics, "empty", "empty answer")
    rows = parse_rows(answer.text)
    if rows is None:
        return Score(False, metrics, "unparseable", "no rows found in the answer")
    truth = [_key(r) for r in case.truth.rows]
    # A header line of column names ("name | age") is not a row.
    got = [_key(r) for r in rows]
    header = got[0] if got else ()
    if (
        len(got) == len(truth) + 1
        and header not in truth
        and all(isinstance(v, str) for v in header)
    ):
        got = got[1:]
    shared = sum((Counter(got) & Counter(truth)).values())
    metrics["row_recall"] = shared / len(truth) if truth else float(not got)
    metrics["row_precision"] = shared / len(got) if got else float(not truth)
    right = got == truth if case.truth.ordered else Counter(got) == Counter(truth)
    metrics["exact"] = right
    if right:
        return Score(True, metrics, None, None, [list(r) for r in got])
    if Counter(got) == Counter(truth):
        why = "the right rows in the wrong order (the query has an ORDER BY)"
    else:
        why = f"{shared} of {len(truth)} rows right; {len(got)} rows given"
    return Score(False, metrics, "wrong_rows", why, [list(r) for r in got])
