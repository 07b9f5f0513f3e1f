"""The shell: a pretend Linux terminal, checked against a real one.

"Act as a Linux terminal" made chat models famous for emulating machines. Each
case is a session of commands, drawn by seeded generators over a seeded home
directory; the true output of every command comes from running the same session
in a real bash in the sandbox (emulate/sandbox/session.py: bubblewrap, home at /home/user,
files at fixed times, no network). The model is asked turn by turn, each turn
sending the whole history (probes/terminal.py): its own earlier outputs
(`history=model`) or the true ones (`history=true`, teacher forcing). Nothing the
model returns is executed. `task=persona` asks for a stated machine instead
(probes/persona.py).

Read top to bottom: the seeded home, the command generators (which track what each
command reads and changes), the truth and the cases, the probe, and the scorer.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Mode, Prompt, Score, case_id, case_rng
from emulate.probe import HARNESS_ERRORS, Ask, Param, Probe, covariate, metric
from emulate.sandbox import Session, isolation, run_session
from emulate.scoring import line_f1, lines

from .persona import MACHINES, Persona
from .rebuild import Rebuild
from .terminal import Commands, Outputs, Task, first_turn, terminal_output

# --- the seeded home ---------------------------------------------------------------------

EPOCH = 1705312800  # 2024-01-15 10:00:00 UTC: every seeded file's time, plus minutes
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "zeta", "theta", "lambda")
NAMES = ("ada", "alan", "grace", "linus", "barbara", "ken", "margaret", "dennis")
CITIES = ("paris", "oslo", "lima", "cairo", "kyoto", "quito")
LEVELS = ("INFO", "WARN", "ERROR")


def seed_home(rng: np.random.Generator) -> dict[str, str]:
    """Files of the session's home: words, numbers, a CSV, a log, a script."""

    def words(n: int) -> str:
        return "".join(
            " ".join(rng.choice(WORDS, size=int(rng.integers(1, 5)))) + "\n" for _ in range(n)
        )

    people = "".join(
        f"{rng.choice(NAMES)},{int(rng.integers(20, 70))},{rng.choice(CITIES)}\n"
        for _ in range(int(rng.integers(3, 7)))
    )
    log = "".join(
        f"2024-01-15 10:{m:02d}:00 {rng.choice(LEVELS)} {rng.choice(WORDS)} done\n"
        for m in sorted(rng.choice(60, size=int(rng.integers(4, 9)), replace=False))
    )
    return {
        "README.md": "# project\nNotes and data for the experiment.\n",
        "docs/notes.txt": words(int(rng.integers(3, 9))),
        "docs/todo.txt": words(int(rng.integers(2, 5))),
        "data/numbers.txt": "".join(
            f"{int(v)}\n" for v in rng.integers(-50, 100, size=int(rng.integers(5, 11)))
        ),
        "data/people.csv": "name,age,city\n" + people,
        "logs/app.log": log,
        "src/hello.py": f'print("hello from {rng.choice(NAMES)}")\n',
    }


# --- command generators --------------------------------------------------------------------


@dataclass
class World:
    """What the generator knows of the session's state, to write valid commands and to
    know which earlier turn each command's output depends on."""

    files: dict[str, str]
    dirs: set[str]
    cwd: str = ""  # relative to home
    changed: dict[str, int] = field(default_factory=dict)  # path -> turn that last changed it
    cwd_turn: int | None = None  # turn that last changed the directory

    def rel(self, path: str) -> str:
        return posixpath.relpath(path or ".", self.cwd or ".")

    def dirty(self, path: str) -> bool:
        """Changed in this session, or holding something that was (times are 'now')."""
        return any(p == path or p.startswith(path + "/") or not path for p in self.changed)

    def near(self, rng: np.random.Generator, pool: list[str]) -> str:
        """Prefer a path the session changed, so later turns depend on earlier ones."""
        fresh = [p for p in pool if p in self.changed]
        return str(rng.choice(fresh if fresh and rng.random() < 0.6 else pool))


@dataclass(frozen=True)
class Command:
    text: str
    reads: tuple[str, ...] = ()
    uses_cwd: bool = False


def _text(w: World, rng: np.random.Generator) -> Command:
    files = sorted(w.files)
    f = w.near(rng, files)
    r = w.rel(f)
    content = w.files[f]
    word = str(rng.choice(content.split() or ["x"]))
    k = int(rng.integers(1, 4))
    a, b = sorted(int(v) for v in rng.integers(1, 13, size=2))
    options = [
        f"cat {r}", f"head -n {k} {r}", f"tail -n {k} {r}", f"wc -l {r}", f"sort {r}",
        f"grep {word} {r}", f"grep -c {word} {r}", f"sed 's/a/A/g' {r}", f"tr a-z A-Z < {r}",
        f"sort {r} | uniq -c",
    ]  # fmt: skip
    if f.endswith(".csv"):
        options += [
            f"cut -d, -f2 {r}",
            f"awk -F, '{{print $1}}' {r}",
            f"awk -F, 'NR>1 {{s+=$2}} END {{print s}}' {r}",
        ]
    if f.endswith("numbers.txt"):
        options += [f"sort -n {r}", f"awk '{{s+=$1}} END {{print s}}' {r}"]
    cmd = str(rng.choice(options))
    if rng.random() < 0.2:  # file-free text tools
        cmd = str(
            rng.choice(
                [
                    f"seq {a} {b}",
                    f"echo $(({a} * {b} + {k}))",
                    f"printf '%s=%d\\n' {word} {a}",
                    f'echo "{word} {b}"',
                ]
            )
        )
        return Command(cmd)
    return Command(cmd, reads=(f,), uses_cwd=True)


def _fs(w: World, rng: np.random.Generator) -> Command:
    clean = sorted(d for d in w.dirs if not w.dirty(d))
    options = [Command("pwd", uses_cwd=True), Command("ls", reads=(w.cwd,), uses_cwd=True)]
    for d in sorted(w.dirs):
        options.append(Command(f"ls {w.rel(d)}", reads=(d,), uses_cwd=True))
        options.append(Command(f"find {w.rel(d)} -type f | sort", reads=(d,), uses_cwd=True))
    # Long listings show times: only where nothing changed, or the truth would hold "now".
    for d in clean:
        options.append(Command(f"ls -l {w.rel(d)}", reads=(d,), uses_cwd=True))
    for f in sorted(p for p in w.files if not w.dirty(p)):
        options.append(Command(f"stat -c '%n %s %y' {w.rel(f)}", reads=(f,), uses_cwd=True))
    return options[int(rng.integers(len(options)))]


def _state(w: World, rng: np.random.Generator, turn: int) -> Command:
    files = sorted(w.files)
    subdirs = sorted(d for d in w.dirs if d and posixpath.dirname(d) == w.cwd)
    kind = str(rng.choice(["mkdir", "cd", "touch", "rm", "mv", "cp", "write", "append"]))
    new = f"{rng.choice(WORDS)}{int(rng.integers(1, 99))}"
    here = posixpath.join(w.cwd, new) if w.cwd else new
    if kind == "cd":
        target = (
            str(rng.choice(subdirs))
            if subdirs and (w.cwd == "" or rng.random() < 0.6)
            else posixpath.dirname(w.cwd)
        )
        if target == w.cwd:
            kind = "mkdir"
        else:
            text = f"cd {w.rel(target) if target else '~'}"
            w.cwd, w.cwd_turn = target, turn
            return Command(text, uses_cwd=True)
    if kind == "mkdir":
        w.dirs.add(here)
        w.changed[here] = turn
        return Command(f"mkdir {new}")
    if kind == "touch":
        w.files[here + ".txt"] = ""
        w.changed[here + ".txt"] = turn
        return Command(f"touch {new}.txt")
    src = w.near(rng, files)
    if kind == "rm" and len(files) > 3:
        del w.files[src]
        w.changed[src] = turn
        return Command(f"rm {w.rel(src)}")
    if kind in ("mv", "cp"):
        dest = here + posixpath.splitext(src)[1]
        w.files[dest] = w.files[src]
        w.changed[dest] = turn
        if kind == "mv":
            del w.files[src]
            w.changed[src] = turn
        return Command(f"{kind} {w.rel(src)} {new}{posixpath.splitext(src)[1]}", reads=(src,))
    line = f"{rng.choice(WORDS)} {int(rng.integers(1, 99))}"
    target = src if kind == "append" else here + ".txt"
    w.files[target] = (w.files.get(target, "") if kind == "append" else "") + line + "\n"
    w.changed[target] = turn
    op = ">>" if kind == "append" else ">"
    return Command(
        f'echo "{line}" {op} {w.rel(target)}', reads=(target,) if kind == "append" else ()
    )


FILTERS = (
    "sort",
    "sort -r",
    "uniq",
    "head -n 3",
    "tail -n 2",
    "wc -l",
    "tr a-z A-Z",
    "rev",
    "cut -c1-5",
    "grep -v a",
)


def _pipeline(w: World, rng: np.random.Generator, depth: int) -> Command:
    f = w.near(rng, sorted(w.files))
    stages = [str(s) for s in rng.choice(FILTERS, size=depth, replace=depth > len(FILTERS))]
    return Command(" | ".join([f"cat {w.rel(f)}", *stages]), reads=(f,), uses_cwd=True)


def _python(w: World, rng: np.random.Generator) -> Command:
    n = int(rng.integers(3, 12))
    f = w.near(rng, sorted(w.files))
    options = [
        Command(f'python3 -c "print(sum(range({n})))"'),
        Command(f"python3 -c \"print('-'.join(str(i * i) for i in range({n})))\""),
        Command(
            'python3 -c "import json; '
            f"print(json.dumps({{'n': {n}, 'xs': [1, 2]}}, sort_keys=True))\""
        ),
        Command(
            f"python3 -c \"print(len(open('{w.rel(f)}').read().split()))\"",
            reads=(f,),
            uses_cwd=True,
        ),
    ]
    return options[int(rng.integers(len(options)))]


def _readback(w: World, rng: np.random.Generator) -> Command:
    """A read of something the session changed, any number of turns back (family
    readback): the turns whose output an earlier change decides."""
    changed = [p for p in sorted(w.files) if p in w.changed]
    if not changed:
        return Command("ls", reads=(w.cwd,), uses_cwd=True)
    f = str(rng.choice(changed))
    r = w.rel(f)
    word = str(rng.choice(w.files[f].split() or ["x"]))
    options = [f"cat {r}", f"wc -l {r}", f"head -n 2 {r}", f"tail -n 1 {r}", f"grep -c {word} {r}"]
    return Command(str(rng.choice(options)), reads=(f,), uses_cwd=True)


# The families `mixed` draws from. `readback` (a change, then a read of any earlier
# change, in turn) stands apart: mixed sessions hold few turns that read a change.
FAMILIES = ("text", "fs", "state", "pipeline", "python")


def generate_session(
    cell: Mapping[str, Any], rng: np.random.Generator
) -> tuple[dict, list[Command], list[int | None]]:
    """The seeded home, the commands, and for each the turn whose change it depends on."""
    files = seed_home(rng)
    w = World(files=dict(files), dirs={posixpath.dirname(p) for p in files} | {""})
    commands, depends = [], []
    for turn in range(cell["turns"]):
        family = cell["family"] if cell["family"] != "mixed" else str(rng.choice(FAMILIES))
        if family == "text":
            cmd = _text(w, rng)
        elif family == "fs":
            cmd = _fs(w, rng)
        elif family == "state":
            cmd = _state(w, rng, turn)
        elif family == "readback":
            cmd = _state(w, rng, turn) if turn % 2 == 0 else _readback(w, rng)
        elif family == "pipeline":
            cmd = _pipeline(w, rng, cell["depth"])
        else:
            cmd = _python(w, rng)
        sources = [w.changed[p] for p in cmd.reads if p in w.changed and w.changed[p] < turn]
        sources += [
            w.changed[p]
            for p in w.changed
            if any(p.startswith(r + "/") for r in cmd.reads if r) and w.changed[p] < turn
        ]
        if cmd.uses_cwd and w.cwd_turn is not None and w.cwd_turn < turn:
            sources.append(w.cwd_turn)
        commands.append(cmd)
        depends.append(max(sources) if sources else None)
    return files, commands, depends


# --- the truth and the cases ----------------------------------------------------------------


MACHINE = (
    "{The machine is an Ubuntu 18.04 server named ubuntu. You are logged in as user in "
    "/home/user, which holds README.md and the folders data, docs, logs and src.}"
)


class SessionTask(Task):
    """task=session: generated commands over the seeded home, run in a real bash."""

    Inputs, Truth = Commands, Outputs
    error_types = ("empty", "state_lost", "wrong_output")

    def case(
        self, probe: Probe, cell: Mapping[str, Any], seed: int, cid: str,
        rng: np.random.Generator, mode: Mode,
    ) -> Case[Commands, Outputs]:  # fmt: skip
        files, commands, depends = generate_session(cell, rng)
        turns = run_session(
            Session(
                files={p: (t, EPOCH + 60 * i) for i, (p, t) in enumerate(sorted(files.items()))},
                dirs={d: EPOCH for d in {posixpath.dirname(p) for p in files} if d},
                commands=[c.text for c in commands],
            )
        )
        inputs = Commands([c.text for c in commands], depends, MACHINE, files)
        return probe.new_case(
            cid,
            dict(cell),
            seed,
            inputs=inputs,
            truth=Outputs(
                [t.output for t in turns], [t.limit for t in turns], [t.exit_code for t in turns]
            ),  # fmt: skip
            prompt=first_turn(mode, inputs, budget=1024),
            covariates={
                "state_turns": sum(d is not None for d in depends),
                "cut_turns": sum(1 for t in turns if t.limit),
            },
        )

    def shows_truth(self, case: Case) -> bool:
        return bool(case.params["history"] == "true")

    def score(self, case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
        return score_session(case, replies, metrics)


TASKS: dict[str, Task] = {
    "session": SessionTask(),
    "persona": Persona(),
    "rebuild": Rebuild(SessionTask()),
}

PARAMS = (
    Param(
        "task",
        ("session",),
        "session: commands checked against a real bash; persona: the stated machine; "
        "rebuild: a session, then all its commands again in one request",
        choices=tuple(TASKS),
    ),
    Param(
        "family",
        ("mixed",),
        "command family; readback: a change, then a read of an earlier change, in turn",
        choices=(*FAMILIES, "readback", "mixed"),
    ),
    Param("turns", (4, 8), "commands in the session", lo=1, hi=30),
    Param("depth", (2,), "stages after cat in a pipeline", lo=1, hi=6),
    Param("machine", ("seed",), "the stated machine (task=persona)", choices=tuple(MACHINES)),
    Param("spec", (), "a JSON machine spec for task=persona, overriding fields", path=True),
    Param(
        "history",
        ("model",),
        "earlier outputs shown: the model's own, or the true ones",
        choices=("model", "true"),
    ),
)


class ShellProbe(Probe):
    name = "shell"
    version = 1
    Inputs, Truth = SessionTask.Inputs, SessionTask.Truth  # the default task's; see types
    summary = "act as a Linux terminal: sessions checked against a real bash"
    params = PARAMS
    columns = (
        metric("turn_exact"),
        metric("line_f1"),
        metric("char_sim"),
        covariate("state_turns"),
        metric("state_acc"),
        metric("state_acc_near"),
        metric("state_acc_far"),
        metric("first_divergence", int),
        covariate("cut_turns"),
        metric("facts", int),
        metric("facts_right", int),
        metric("facts_wrong", int),
        metric("facts_absent", int),
        metric("fact_acc"),
        metric("gpu_count_ok", bool),
        metric("rebuilt_true"),
        metric("rebuilt_own"),
        metric("first_true"),
        metric("rebuilt_consistent"),
    )
    error_types = tuple(
        dict.fromkeys([*HARNESS_ERRORS, *(e for t in TASKS.values() for e in t.error_types)])
    )
    summary_means = ("turn_exact", "line_f1", "state_acc", "fact_acc")
    default_mode = "chat"

    def missing(self) -> str | None:
        if isolation() != "bwrap":
            return "it runs its sessions under bubblewrap: apt-get install bubblewrap"
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: Mode) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        return TASKS[cell["task"]].case(self, cell, seed, cid, case_rng(cid), mode)

    turns_see_answers = True  # each turn sends the session so far, answers included

    async def converse(self, case: Case, ask: Ask) -> Answer:
        return await TASKS[case.params["task"]].converse(case, ask)

    def requests(self, case: Case) -> list[tuple[Prompt, str]]:
        return TASKS[case.params["task"]].requests(case)

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        task = TASKS[params["task"]]
        return task.Inputs, task.Truth

    def migrate(self, case: Case) -> Case:
        # Journals before cut_turns was a covariate scored it with each answer.
        limits = case.truth.get("limits") if isinstance(case.truth, Mapping) else None
        if limits is None or case.covariates.get("cut_turns") is not None:
            return case
        covariates = {**case.covariates, "cut_turns": sum(1 for limit in limits if limit)}
        return replace(case, covariates=covariates)

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        return TASKS[case.params["task"]].score(case, answer.turns or (), metrics)


# --- the scorer ----------------------------------------------------------------------------


def score_session(
    case: Case[Commands, Outputs], replies: tuple[str, ...], metrics: dict[str, Any]
) -> Score:
    truths, depends = case.truth.outputs, case.inputs.depends_on
    per_turn: list[dict[str, Any]] = []
    for t, truth in enumerate(truths):
        said = (
            lines(terminal_output(replies[t], case.inputs.commands[t])) if t < len(replies) else []
        )
        want, source = lines(truth), depends[t]
        a, b = "\n".join(said)[:4000], "\n".join(want)[:4000]
        per_turn.append(
            {
                "exact": said == want,
                "line_f1": line_f1(said, want),
                "char_sim": difflib.SequenceMatcher(None, a, b).ratio() if a or b else 1.0,
                "back": None if source is None else t - source,
                "cut": case.truth.limits[t],
            }
        )
    n = len(per_turn)
    metrics["turn_exact"] = sum(p["exact"] for p in per_turn) / n
    metrics["line_f1"] = sum(p["line_f1"] for p in per_turn) / n
    metrics["char_sim"] = sum(p["char_sim"] for p in per_turn) / n
    state = [p for p in per_turn if p["back"] is not None]
    near = [p for p in state if p["back"] <= 2]
    far = [p for p in state if p["back"] > 2]
    for key, group in (("state_acc", state), ("state_acc_near", near), ("state_acc_far", far)):
        metrics[key] = sum(p["exact"] for p in group) / len(group) if group else None
    first = next((t for t, p in enumerate(per_turn) if not p["exact"]), None)
    metrics["first_divergence"] = None if first is None else first + 1
    if first is None:
        return Score(True, metrics, None, None, per_turn)
    if not any(r.strip() for r in replies):
        return Score(False, metrics, "empty", "no output in any turn", per_turn)
    exact = sum(p["exact"] for p in per_turn)
    why = f"turn {first + 1} ({case.inputs.commands[first]}) differs first; {exact} of {n} exact"
    kind = "state_lost" if per_turn[first]["back"] is not None else "wrong_output"
    return Score(False, metrics, kind, why, per_turn)
