"""The report's cases: every finished case of every run, as the case browser shows
it (report.html). The page holds an index of every case (what the table filters
and sorts on, a few dozen bytes each) and the cases in parts of PART cases: what a
reader checks one case by (the prompt as sent, the raw answer, the truth, what was
parsed, the metrics). A report of up to INLINE cases holds its parts too, one file;
a larger one writes them beside it (cases/part-NNNN.js), and the page loads a part
when one of its cases is opened or searched: report.html stays a few megabytes
however large the runs."""

from __future__ import annotations

import contextlib
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from emulate.case import Case, Row
from emulate.extract import recording
from emulate.journal import write_atomic
from emulate.probe import Probe, score_case
from emulate.registry import get_probe, known

from .runs import Run

PART = 500  # cases a part
INLINE = 2_000  # cases a report holds in its one file
PARTS = "cases"  # the folder beside report.html for larger reports
# Past this many characters a prompt or an answer is cut for the page (a model can
# answer a megabyte of one character); the record says how much was left out.
SHOWN_CHARS = 20_000
REASON_CHARS = 120  # of the reason, in the table


@dataclass(frozen=True)
class CaseData:
    """The browser's data: the index (inline) and the parts (inline, or side files)."""

    index: dict[str, Any]
    parts: list[list[dict[str, Any]]]

    @property
    def inline(self) -> bool:
        return len(self.index["id"]) <= INLINE


def case_data(runs: Sequence[Run], labels: Sequence[str]) -> CaseData:
    """Every finished case of `runs` (`labels` name the runs as the report's tables
    do), in run order."""
    rows = [(i, row) for i, run in enumerate(runs) for row in run.rows]
    probes = {run.probe: get_probe(run.probe) for run in runs if known(run.probe)}
    # The parameters, then the covariates the summaries break accuracy down by (their
    # rows and plot points link here with a filter on them).
    axes = list(dict.fromkeys(a for p in probes.values() for a in p.summary_axes))
    params = list(dict.fromkeys(k for _, r in rows for k in r.case.params))
    params += [a for a in axes if a not in params]
    errors = list(dict.fromkeys(str(r.score.error_type) for _, r in rows))
    index = {
        "runs": [
            {"label": label, "probe": run.probe, "model": run.model}
            for run, label in zip(runs, labels, strict=True)
        ],  # fmt: skip
        "params": params,
        "errors": errors,
        "part": PART,
        "run": [i for i, _ in rows],
        "id": [r.case.id for _, r in rows],
        "values": [[_value(r, p) for p in params] for _, r in rows],
        "correct": [int(bool(r.score.correct)) for _, r in rows],
        "error": [errors.index(str(r.score.error_type)) for _, r in rows],
        "reason": [(r.score.reason or "")[:REASON_CHARS] for _, r in rows],
        # Model beside model: whether two runs answered a case alike, without the text.
        "said": [zlib.crc32(_said(r).encode("utf-8", "surrogatepass")) for _, r in rows],
    }
    records = [_record(row, probes.get(row.case.probe)) for _, row in rows]
    return CaseData(index, [records[i : i + PART] for i in range(0, len(records), PART)])


def _value(row: Row, name: str) -> Any:
    params = row.case.params
    return params[name] if name in params else row.case.covariates.get(name)


def _said(row: Row) -> str:
    """What the model answered, every turn, as compared between runs."""
    answer = row.answer
    return "\n".join(t.strip() for t in answer.turns) if answer.turns else answer.text.strip()


def _record(row: Row, probe: Probe | None) -> dict[str, Any]:
    case, answer, score = row.case, row.answer, row.score
    prompt: Any = case.prompt if isinstance(case.prompt, str) else [dict(m) for m in case.prompt]
    typed = _typed(probe, case) if probe is not None and not answer.error else None
    return {
        "inputs": _plain(case.inputs),
        "explain": _explained(probe, typed, row) if probe and typed else None,
        "region": _region(probe, typed, row) if probe and typed else None,
        "prompt": _cut(prompt),
        "answer": _cut(answer.text),
        "turns": [_cut(t) for t in answer.turns] if answer.turns else None,
        "error": answer.error,
        "truth": _plain(case.truth),
        "parsed": score.parsed,
        "foils": _plain(dict(case.foils)),
        "metrics": dict(score.metrics),
        "reason": score.reason,
    }


def _typed(probe: Probe, case: Case) -> Case | None:
    """The case with its probe's types, once for both views; None where it no longer
    types (the case is still shown, without them)."""
    try:
        return probe.typed(case)
    except Exception:  # noqa: BLE001 - an old or foreign journal's case
        return None


def _region(probe: Probe, typed: Case, row: Row) -> list[int] | None:
    """Where in the raw answer the probe read its value ([start, end)): the scorer is
    run again with the shared extraction recording what it accepted. None for a
    session's turns, or text the extraction rewrote (LaTeX)."""
    answer = row.answer
    if answer.turns or len(answer.text) > SHOWN_CHARS:
        return None  # (a cut answer: offsets into the whole would mislead)
    with recording() as seen:
        again = score_case(probe, typed, answer)  # a scorer's bug is a scorer_error
    if json.loads(json.dumps(again.parsed, default=str)) != row.score.parsed:
        return None  # scored otherwise when it ran: what this rule reads is not that
    for said in seen[-1:]:
        said = said.strip()
        # The extraction reads the last region (after reasoning, the last fence): the
        # last place the text it read stands is the likeliest to be that region.
        at = answer.text.rfind(said) if said else -1
        if at >= 0:  # in UTF-16 code units, as the page's script counts
            start = len(answer.text[:at].encode("utf-16-le", "surrogatepass")) // 2
            return [start, start + len(said.encode("utf-16-le", "surrogatepass")) // 2]
    return None


def _explained(probe: Probe, typed: Case, row: Row) -> Any:
    """The probe's own view of the answer; none where it has none, or fails (a report
    shows every case even where a probe's explanation has a bug)."""
    try:
        return probe.explain(typed, row.answer, row.score)
    except Exception:  # noqa: BLE001 - the generic view stands in
        return None


def _cut(value: Any) -> Any:
    """Text past SHOWN_CHARS cut, with a note of how much; chat turns each."""
    if isinstance(value, list):
        return [{**m, "content": _cut(m.get("content", ""))} for m in value]
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        # Head and tail: an answer's last lines (where a reasoning model answers) and a
        # prompt's last block (the question) stay.
        half = SHOWN_CHARS // 2
        left = len(value) - 2 * half
        return f"{value[:half]}\n… ({left:,} characters left out) …\n{value[-half:]}"
    return value


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def script_json(data: Any) -> str:
    """JSON to put inside a <script type="application/json"> element, or a script of
    its own: nothing in it can end the element or open markup (<, >, & escaped), and
    it stays one valid JSON text, and JavaScript, whatever a model wrote (lone
    surrogates and JavaScript's line separators escaped too)."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str,
                          allow_nan=False)  # fmt: skip
    except ValueError:  # NaN or infinity (a broken server's logprob): no JSON has them
        text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), default=str)
    return (
        text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        .encode("utf-8", "backslashreplace").decode("utf-8")
    )  # fmt: skip


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity a string ("nan", "inf"), which JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def part_script(number: int, records: Sequence[Mapping[str, Any]]) -> str:
    """A side file: one part of a large report's cases, handed to the page's script."""
    return f"emulateCasePart({number},{script_json(list(records))});\n"


def cases_link(**given: Any) -> str:
    """The case browser's address for a filter, as its script reads it."""
    return "#cases?" + urlencode(
        {k: _as_js(v) for k, v in given.items() if v is not None}, errors="replace"
    )


def _as_js(value: Any) -> str:
    """A parameter's value as the page's script spells it (String(x) in JavaScript)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def write_parts(out: Path, cases: CaseData) -> None:
    """A large report's cases beside it, a part a file; none for a small one (and
    none left from an earlier, larger report in the same folder)."""
    folder = out / PARTS
    for old in folder.glob("part-[0-9][0-9][0-9][0-9].js") if folder.is_dir() else ():
        old.unlink()  # an earlier report's parts; nothing else in the folder is touched
    if cases.inline:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if that left it empty
        return
    folder.mkdir(exist_ok=True)
    for n, records in enumerate(cases.parts):
        write_atomic(folder / f"part-{n:04d}.js", part_script(n, records))
