"""Reports from run folders: summary.csv, PNG plots and one self-contained HTML page.

Accuracy carries a Wilson 95% interval everywhere; each numeric difficulty axis gets
a breaking point (stats.breaking_point) per model. The HTML embeds its plots as data
URIs and loads nothing, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from emulate import cost as costs
from emulate.journal import write_atomic
from emulate.registry import get_probe, known

from .cases import CaseData, case_data, cases_link, script_json, write_parts
from .plots import _bp, _chance, _numeric, _pct, _values, plot
from .runs import Run, load_runs, series_labels
from .stats import BreakingPoint, breaking_point
from .summary import SummaryRow, key, numeric_metrics
from .summary import summarise as summarise_rows

SUMMARY = "summary.csv"
HTML = "report.html"
PLOTS = "plots"


@dataclass(frozen=True)
class Curve:
    """The breaking point of one model along one numeric axis of a probe."""

    probe: str
    model: str
    axis: str
    point: BreakingPoint


@dataclass(frozen=True)
class RunInfo:
    """What the report says about each run: where, what, and what it cost."""

    path: Path
    probe: str
    model: str
    label: str
    server: str
    mode: str
    run_ids: tuple[str, ...]
    seed: Any
    done: int
    total: Any
    started: str
    versions: Mapping[str, str]
    usage: costs.Usage
    cost: costs.Cost


@dataclass(frozen=True)
class Report:
    out: Path
    summary: tuple[SummaryRow, ...]
    curves: tuple[Curve, ...]
    runs: tuple[RunInfo, ...]
    plots: tuple[Path, ...]
    html: Path

    def describe(self) -> str:
        """The overall rows and breaking points as text, for the terminal."""
        lines = []
        for row in self.summary:
            if row.group == "all":
                chance = f", chance {row.chance:.1%}" if row.chance is not None else ""
                lines.append(
                    f"{row.probe:<9} {row.model:<34} n={row.n:<5} accuracy {row.accuracy:6.1%} "
                    f"[{row.low:.1%}, {row.high:.1%}]{chance}"
                )
        for c in self.curves:
            lines.append(f"{c.probe:<9} {c.model:<34} breaking point on {c.axis}: {_bp(c.point)}")
        total = [r.cost.amount for r in self.runs]
        if all(a is not None for a in total):
            spent = sum(a for a in total if a is not None)
            lines.append(f"cost {costs.dollars(spent)} over {len(self.runs)} runs")
        return "\n".join(lines)


# ---------------------------------------------------------------- the numbers


def _probe_series(runs: Sequence[Run]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """probe -> series label -> flat rows. A case run twice under one label counts once."""
    labels = series_labels(runs)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for run in runs:
        series = out.setdefault(run.probe, {}).setdefault(labels[run.path], {})
        for row in run.flat():
            series[row["case_id"]] = row
    return {p: {k: list(v.values()) for k, v in s.items()} for p, s in out.items()}


def _axes(probe: str, runs: Sequence[Run], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The case parameters (and the probe's summary covariates) that vary across `rows`."""
    mine = [run for run in runs if run.probe == probe]
    names = list(dict.fromkeys(k for run in mine for r in run.rows for k in r.case.params))
    names += list(get_probe(probe).summary_axes) if known(probe) else []
    return [a for a in names if len({key(r.get(a)) for r in rows if r.get(a) is not None}) > 1]


Grouped = list[tuple[str, dict[str, list[dict[str, Any]]], list[str]]]


def _grouped(runs: Sequence[Run]) -> Grouped:
    """Per probe: its series (label -> flat rows) and the axes that vary, read once."""
    out = []
    for probe, series in _probe_series(runs).items():
        every = [r for rows in series.values() for r in rows]
        out.append((probe, series, _axes(probe, runs, every)))
    return out


def summarise(runs: Sequence[Run]) -> list[SummaryRow]:
    """For each probe and model: all cases, each value of each axis, each grid cell."""
    return _summarise(_grouped(runs))


def _summarise(grouped: Grouped) -> list[SummaryRow]:
    out = []
    for probe, series, axes in grouped:
        metrics = numeric_metrics(probe, [r for rows in series.values() for r in rows])
        for model, rows in series.items():
            out += summarise_rows(rows, axes, metrics, probe=probe, model=model, cells=True)
    return out


def curves(runs: Sequence[Run], seed: int = 0) -> list[Curve]:
    """A breaking point for each probe, model and numeric axis; a reason where none fits."""
    return _curves(_grouped(runs), seed)


def _curves(grouped: Grouped, seed: int) -> list[Curve]:
    out = []
    for probe, series, axes in grouped:
        every = [r for rows in series.values() for r in rows]
        for axis in axes:
            if not _numeric(_values(every, axis)):
                continue
            for model, rows in series.items():
                rows = [r for r in rows if r.get(axis) is not None]
                point = breaking_point(
                    [r[axis] for r in rows],
                    [bool(r["correct"]) for r in rows],
                    chance=_chance(rows) or 0.0,
                    seed=seed,
                )
                out.append(Curve(probe, model, axis, point))
    return out


def run_info(runs: Sequence[Run], prices: costs.Prices) -> list[RunInfo]:
    labels = series_labels(runs)
    out = []
    for run in runs:
        used = costs.usage(run.rows)
        config = run.meta.get("config", {})
        out.append(
            RunInfo(
                path=run.path,
                probe=run.probe,
                model=run.model,
                label=labels[run.path],
                server=run.server,
                mode=run.mode,
                run_ids=run.run_ids,
                seed=config.get("seed", ""),
                done=len(run.rows),
                total=run.meta.get("cases", ""),
                started=run.meta.get("started", ""),
                versions=run.meta.get("versions", {}),
                usage=used,
                cost=costs.cost(
                    run.model, run.server, used.prompt_tokens, used.completion_tokens, prices
                ),
            )
        )
    return out


# ---------------------------------------------------------------- the files


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    params = list(dict.fromkeys(k for r in rows for k in r.params))
    metrics = list(dict.fromkeys(k for r in rows for k in r.means))
    head = ["probe", "model", "group", "cell", *params, "n", "correct", "accuracy"]
    head += ["ci_low", "ci_high", "chance", "errors", *(f"mean_{m}" for m in metrics)]
    head += ["wrong_answers"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in rows:
        w.writerow(
            [r.probe, r.model, r.group, r.cell, *(r.params.get(p, "") for p in params)]
            + [r.n, r.correct, _num(r.accuracy), _num(r.low), _num(r.high), _num(r.chance)]
            + [r.errors, *(_num(r.means.get(m)) for m in metrics)]
            + ["; ".join(f"{k} {v}" for k, v in r.kinds.items())]
        )
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    prices: str | Path | None = None,
    seed: int = 0,
    per_case: bool = False,
) -> Report:
    """summary.csv, plots/*.png and report.html for one or more run folders, in `out`
    (default: DIR/report for one folder, report-TIMESTAMP for several). Probes that
    draw their cases (markov) add a picture per run, or per case with `per_case`."""
    runs = load_runs(paths)
    table = costs.load_prices(prices)
    if out is None:
        out = (
            Path(paths[0]) / "report"
            if len(paths) == 1
            else Path(f"report-{datetime.now(UTC):%Y%m%d-%H%M%S}")
        )
    out = Path(out)
    grouped = _grouped(runs)
    summary = _summarise(grouped)
    fitted = _curves(grouped, seed)
    infos = run_info(runs, table)
    images: dict[str, bytes] = {}
    links: dict[str, list[dict[str, str]]] = {}  # each plotted point's cases
    for probe, series, axes in grouped:
        for axis in axes:
            fits = {c.model: c.point for c in fitted if c.probe == probe and c.axis == axis}
            spots: list[dict[str, Any]] = []
            images[f"{probe}-{axis}.png"] = plot(probe, axis, series, fits, spots)
            links[f"{probe}-{axis}.png"] = [
                {"href": cases_link(run=s["model"], probe=probe, **{f"p.{axis}": s["value"]}),
                 "title": f"{s['model']}, {axis}={s['value']}: its cases",
                 "x": f"{s['x']:.4f}", "y": f"{s['y']:.4f}"}
                for s in spots
            ]  # fmt: skip
    for run in (r for r in runs if known(r.probe)):
        for name, png in get_probe(run.probe).figures(run.rows, per_case).items():
            images[f"{run.path.name}-{name}"] = png
    labels = series_labels(runs)
    cases = case_data(runs, [labels[r.path] for r in runs])
    page = render_html(summary, fitted, infos, images, table, cases, links)
    # Everything is computed before the first write, so bad input leaves nothing behind.
    (out / PLOTS).mkdir(parents=True, exist_ok=True)
    write_atomic(out / SUMMARY, summary_csv(summary))
    for name, png in images.items():
        write_atomic(out / PLOTS / name, png)
    write_parts(out, cases)
    # A journal's lone surrogates (JSON allows them) cannot be UTF-8: shown as U+FFFD.
    write_atomic(out / HTML, page.encode("utf-8", "replace").decode("utf-8"))
    return Report(
        out, tuple(summary), tuple(fitted), tuple(infos),
        tuple(out / PLOTS / n for n in images), out / HTML,
    )  # fmt: skip


# ---------------------------------------------------------------- the page

TEMPLATES = "templates"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f4; } td { white-space: nowrap; }
td.l, th.l { text-align: left; white-space: normal; }
img { width: 49%; border: 1px solid #eee; margin: .4em 0; }
div.plot { position: relative; display: inline-block; width: 49%; margin: .4em 0; }
div.plot img { width: 100%; margin: 0; display: block; }
a.pt { position: absolute; width: 16px; height: 16px; margin: -8px 0 0 -8px; border-radius: 50%; }
a.pt:hover, a.pt:focus { outline: 2px solid #333; }
.note { color: #666; font-size: 12px; } code { font-size: 12px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 30em; overflow: auto;
      background: #f8f8f8; padding: .5em; border: 1px solid #eee; font-size: 12px; }
pre, td, p { unicode-bidi: isolate; }
#case-filters label { margin-right: 1em; display: inline-block; }
#case-table table { width: 100%; } #case-table td { white-space: normal; }
th.sortable { cursor: pointer; } tr.case-row { cursor: pointer; }
tr.case-row.wrong td:first-child { border-left: 3px solid #c33; }
tr.case-row.right td:first-child { border-left: 3px solid #3a3; }
table.grid td { border: 1px solid #ddd; text-align: center; min-width: 2em; }
td.bad, .diff .del { background: #fdd; } .diff .add { background: #dfd; }
p.role { font-weight: bold; margin: .6em 0 .2em; } p.wrong { color: #a22; } p.right { color: #282; }
div.side { display: flex; gap: 1em; } div.side > div.col { flex: 1; min-width: 0; }
tr.legal td { background: #efe; } tr.illegal td { background: #fee; }
"""

_RUN_HEAD = (
    "folder", "probe", "model", "server", "mode", "run id", "seed", "cases", "started",
    "prompt tokens", "answer tokens", "cost",
)  # fmt: skip


def render_html(
    summary: Sequence[SummaryRow],
    fitted: Sequence[Curve],
    infos: Sequence[RunInfo],
    images: Mapping[str, bytes],
    prices: costs.Prices,
    cases: CaseData | None = None,
    links: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
) -> str:
    """report.html from its template (emulate/analysis/templates), autoescaped: what a
    run holds is shown as text. The case browser's data is one JSON block that nothing
    in it can end, and the page runs only its own script: the Content-Security-Policy
    allows that script and style by their hashes, and nothing from anywhere."""
    import jinja2  # only `report` draws a page
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emulate.analysis", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    script = (files("emulate.analysis") / TEMPLATES / "browser.js").read_text(encoding="utf-8")
    cases = cases or case_data([], [])
    return env.get_template("report.html.j2").render(
        css=Markup(_CSS),
        style_hash=csp_hash(_CSS),
        script=Markup(script),
        script_hash=csp_hash(script),
        index_json=Markup(script_json(cases.index)),
        inline_parts=[Markup(script_json(p)) for p in (cases.parts if cases.inline else [])],
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        run_head=_RUN_HEAD,
        run_rows=[_run_row(i) for i in infos],
        notes=_notes(infos),
        prices=prices,
        probes=[
            _section(probe, summary, fitted, images, links or {})
            for probe in dict.fromkeys(r.probe for r in summary)
        ],  # fmt: skip
    )


def csp_hash(text: str) -> str:
    """A Content-Security-Policy source for an inline element holding exactly `text`."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _run_row(i: RunInfo) -> list[str]:
    """A run's line of the Runs table, every value text (run.json's are not checked:
    none may pass for a link)."""
    return [str(v) for v in [
        i.path, i.probe, i.label, i.server, i.mode, ", ".join(i.run_ids), i.seed,
        f"{i.done}/{i.total}" if i.total != "" else i.done, i.started,
        _tokens(i.usage.prompt_tokens, i.usage), _tokens(i.usage.completion_tokens, i.usage),
        "" if i.cost.amount is None else costs.dollars(i.cost.amount),
    ]]  # fmt: skip


def _notes(infos: Sequence[RunInfo]) -> list[str]:
    notes = dict.fromkeys(i.cost.note for i in infos if i.cost.amount is None or i.cost.amount)
    if any(i.usage.estimated for i in infos):
        notes["≈: the server reported no usage for some cases; counted with tiktoken"] = None
    versions = dict.fromkeys(" ".join(f"{k} {v}" for k, v in i.versions.items()) for i in infos)
    notes.update((f"versions: {v}", None) for v in versions if v)
    return list(notes)


def _section(
    probe: str,
    summary: Sequence[SummaryRow],
    fitted: Sequence[Curve],
    images: Mapping[str, bytes],
    links: Mapping[str, Sequence[Mapping[str, str]]],
) -> dict[str, Any]:
    """One probe's part of the page: its models, breaking points, plots, and each
    model's accuracy by axis value and grid cell."""
    rows = [r for r in summary if r.probe == probe]
    metrics = list(dict.fromkeys(m for r in rows for m in r.means))
    by_model = []
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model and r.group != "all"]
        if not mine:
            continue
        kinds = next(r.kinds for r in rows if r.model == model and r.group == "all")
        by_model.append({
            "name": model,
            "kinds": [{"text": f"{k} {v}", "href": cases_link(run=model, probe=probe, error=k)}
                      for k, v in kinds.items()],
            "axes": _summary_rows([r for r in mine if r.group == "axis"], False),
            "cells": _summary_rows([r for r in mine if r.group == "cell"], False),
        })  # fmt: skip
    return {
        "probe": probe,
        "what": get_probe(probe).summary if known(probe) else "",
        "head": ["n", "accuracy", "95% interval", "chance", "errors", *metrics],
        "models": _summary_rows([r for r in rows if r.group == "all"], True),
        "fits": [
            [
                c.model,
                c.axis,
                _bp(c.point),
                _pct(c.point.ceiling) if c.point.reason is None else "",
                c.point.n,
            ]
            for c in fitted
            if c.probe == probe
        ],  # fmt: skip
        "images": [
            {"name": name, "data": base64.b64encode(png).decode(), "points": links.get(name, [])}
            for name, png in images.items()
            if name.startswith(f"{probe}-")
        ],  # fmt: skip
        "by_model": by_model,
    }


def _tokens(count: int, usage: costs.Usage) -> str:
    return f"≈{count:,}" if usage.estimated else f"{count:,}"


def _summary_rows(rows: Sequence[SummaryRow], label: bool) -> list[list[Any]]:
    """Each row's figures, its first cell a link to its cases in the case browser."""
    metrics = list(dict.fromkeys(m for r in rows for m in r.means))
    return [
        [
            {
                "text": r.model if label else r.cell,
                "href": cases_link(
                    run=r.model, probe=r.probe, **{f"p.{k}": v for k, v in r.params.items()}
                ),
            }
        ]
        + [r.n, _pct(r.accuracy), f"[{_pct(r.low)}, {_pct(r.high)}]", _pct(r.chance), r.errors]
        + ["" if r.means.get(m) is None else f"{r.means[m]:.3f}" for m in metrics]
        for r in rows
    ]
