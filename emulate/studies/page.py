"""The study's answer: study.csv and study.json (one row per claim and model) and
study.html, which opens with one line per model and links every verdict to its
evidence (each run's report, and its cases in the report's browser)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from emulate.analysis.cases import cases_link
from emulate.journal import JOURNAL, write_atomic
from emulate.model_config import LOCAL

from .conduct import Planned
from .spec import Study
from .statistics import Stat
from .verdict import MAX_FACTOR, ClaimResult

STUDY_CSV, STUDY_JSON, STUDY_HTML = "study.csv", "study.json", "study.html"
REPORTS = "reports"
COLUMNS = (
    "claim", "model", "verdict", "rule", "title", "question", "statistic", "estimate", "low",
    "high", "n", "evidence", "more_cases", "unit", "cases", "excluded", "note", "runs", "reports",
)  # fmt: skip
VERDICTS = ("imitates", "computes", "inconclusive")


@dataclass(frozen=True)
class StudyPage:
    html: Path
    csv: Path
    json: Path
    lines: tuple[str, ...]  # one per model: its verdicts in a sentence

    def describe(self) -> str:
        return "\n".join(self.lines)


def label(model: str) -> str:
    return "Gemma 3 270M (local)" if model == LOCAL else model


def num(x: float) -> str:
    """A figure as the CSV holds it: 4 significant digits, so that a replay on another
    CPU (whose trained truths differ in their last digits) writes the same file."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def summary_line(model: str, results: Sequence[ClaimResult]) -> str:
    """ "Gemma 3 270M (local): 6 claims imitates, 1 computes, 1 inconclusive (C7: 40
    more sessions)"."""
    mine = [r for r in results if r.model == model]
    counts = [f"{sum(r.verdict == v for r in mine)} {v}" for v in VERDICTS]
    open_ = [f"{r.claim.id}: {why_open(r)}" for r in mine if r.verdict == "inconclusive"]
    tail = f" ({'; '.join(open_)})" if open_ else ""
    claims = f"{len(mine)} claim" + ("" if len(mine) == 1 else "s")
    return f"{label(model)}: {claims}: " + ", ".join(counts) + tail


def why_open(r: ClaimResult) -> str:
    """What an inconclusive claim lacks, in a few words."""
    if r.more_cases:
        return f"{r.more_cases} more {r.claim.unit}"
    if r.not_run or r.rule != "neither rule holds":
        return r.rule
    if not r.cases:
        return "no answered rows"
    return f"not within {MAX_FACTOR:g} times the cases"


def _reports(planned: Sequence[Planned], result: ClaimResult) -> list[tuple[str, str]]:
    """Each run of the claim's report, as (path from the study's folder, probe)."""
    if not result.stats:
        return []
    runs = {p.run.name: p.run.probe for p in planned if p.claim.id == result.claim.id}
    return [
        (f"{REPORTS}/{result.claim.id}-{run}/report.html", probe) for run, probe in runs.items()
    ]


def _runs_of(planned: Sequence[Planned], result: ClaimResult, out: Path) -> list[str]:
    return [
        str(p.folder.relative_to(out)) for p in planned
        if p.claim.id == result.claim.id and p.model.model == result.model and p.config
    ]  # fmt: skip


def row(result: ClaimResult, planned: Sequence[Planned], out: Path) -> dict[str, Any]:
    first = result.stats[0] if result.stats else None
    return {
        "claim": result.claim.id,
        "model": result.model,
        "verdict": result.verdict,
        "rule": result.rule,
        "title": result.claim.title,
        "question": result.claim.question,
        "statistic": first.name if first else "",
        "estimate": num(first.value) if first else "",
        "low": num(first.low) if first else "",
        "high": num(first.high) if first else "",
        "n": first.n if first else "",
        "evidence": "; ".join(_describe(s) for s in result.stats),
        "more_cases": "" if result.more_cases is None else result.more_cases,
        "unit": result.claim.unit,
        "cases": result.cases,
        "excluded": result.excluded,
        "note": result.claim.note,
        "runs": " ".join(_runs_of(planned, result, out)),
        "reports": " ".join(path for path, _ in _reports(planned, result)),
    }


def _describe(s: Stat) -> str:
    if math.isnan(s.value):
        text = f"{s.name} none, n={s.n}"
    elif math.isnan(s.low) or math.isnan(s.high):
        text = f"{s.name} {num(s.value)}, no interval, n={s.n}"
    else:
        text = f"{s.name} {num(s.value)} [{num(s.low)}, {num(s.high)}] n={s.n}"
    extras = [f"{k} {num(v) if isinstance(v, float) else v}" for k, v in s.extra.items()
              if isinstance(v, (int, float, str)) and k not in ("cases", "paired")]  # fmt: skip
    return text + (f" ({', '.join(extras)})" if extras else "")


def _stat_json(s: Stat) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, Stat):
            return _stat_json(v)
        return None if isinstance(v, float) and math.isnan(v) else v

    return {"name": s.name, "kind": s.kind, "value": clean(s.value), "low": clean(s.low),
            "high": clean(s.high), "n": s.n,
            "extra": {k: clean(v) for k, v in s.extra.items()}}  # fmt: skip


def _json_scalar(value: Any) -> Any:
    """numpy's numbers (a `python` statistic's own may hold them) as Python's."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_page(out: Path, study: Study, planned: Sequence[Planned],
               results: Sequence[ClaimResult], meta: Mapping[str, Any]) -> StudyPage:  # fmt: skip
    """study.csv, study.json and study.html in `out`."""
    rows = [row(r, planned, out) for r in results]
    models = list(dict.fromkeys(r.model for r in results))
    lines = tuple(summary_line(m, results) for m in models)
    write_atomic(out / STUDY_CSV, to_csv(rows))
    data = {
        **meta,
        "study": study.name,
        "title": study.title,
        "budget": study.budget,
        "summary": list(lines),
        "rows": [
            {**r_, "founding": res.claim.founding, "stats": [_stat_json(s) for s in res.stats]}
            for r_, res in zip(rows, results, strict=True)
        ],
    }
    text = json.dumps(data, indent=1, allow_nan=False, default=_json_scalar)
    write_atomic(out / STUDY_JSON, text + "\n")
    write_atomic(out / STUDY_HTML, _html(study, rows, results, lines, planned))
    return StudyPage(out / STUDY_HTML, out / STUDY_CSV, out / STUDY_JSON, lines)


def _html(study: Study, rows: Sequence[Mapping[str, Any]], results: Sequence[ClaimResult],
          lines: Sequence[str], planned: Sequence[Planned]) -> str:  # fmt: skip
    import jinja2
    from markupsafe import Markup

    from emulate.analysis.report import csp_hash

    css = (files("emulate.studies") / "study.css").read_text(encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emulate.studies", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    claims = []
    for r, res in zip(rows, results, strict=True):
        reports = [
            {"text": path.split("/")[1], "href": path, "cases": path + cases_link(probe=probe)}
            for path, probe in _reports(planned, res)
        ]
        claims.append({"row": r, "result": res, "stats": [_describe(s) for s in res.stats],
                       "reports": reports, "label": label(res.model),
                       "open": why_open(res) if res.verdict == "inconclusive" else ""})  # fmt: skip
    return env.get_template("study.html.j2").render(
        css=Markup(css),
        style_hash=csp_hash(css),
        study=study,
        lines=lines,
        claims=claims,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_reports(out: Path, planned: Sequence[Planned]) -> None:
    """Each claim's run's report, every model's run of it in one page (curves, breaking
    points, the case browser): OUT/reports/CLAIM-RUN/report.html."""
    from emulate.analysis.report import report

    groups: dict[str, list[Path]] = {}
    for p in planned:
        if p.config is not None and (p.folder / JOURNAL).exists():
            groups.setdefault(f"{p.claim.id}-{p.run.name}", []).append(p.folder)
    for name, folders in groups.items():
        report(folders, out / REPORTS / name)
