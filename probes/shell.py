"""The shell: a pretend Linux terminal, checked against a real one.

"Act as a Linux terminal" made chat models famous for emulating machines. Each
case is a session of commands, drawn by seeded generators over a seeded home
directory; the true output of every command comes from running the same session
in a real bash in the sandbox (emulate/sandbox/session.py: bubblewrap, home at /home/user,
files at fixed times, no network). The model is asked turn by turn, each turn
sending the whole history, as chat services do when they rebuild a session: its own
earlier outputs (`history=model`) or the true ones (`history=true`, teacher
forcing). Nothing the model returns is executed.

Read top to bottom: the seeded home, the command generators (which track what each
command reads and changes), the truth, the prompts and the turn-by-turn driver, and
the scorer.
"""

from __future__ import annotations

import difflib
import json
import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.errors import EmulateError, read_text
from emulate.extract import BLOCK, region
from emulate.probe import Ask, Param, Probe, covariate, metric
from emulate.sandbox import Session, isolation, run_session
from emulate.scoring import line_f1, lines

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


# --- the stated machine (task=persona) --------------------------------------------------------
#
# The seed told a chat model it was Ubuntu 18.04 with Python 3.9, PyTorch 1.8, CUDA 11.3
# and four RTX 3090s; it showed four GPUs in nvidia-smi. Here the truth is the declared
# spec, not an execution: each command's output is parsed for the facts it should show.

SEED_MACHINE: dict[str, Any] = {
    "os": "Ubuntu 18.04",
    "kernel": "4.15.0-112-generic",
    "python": "3.9",
    "torch": "1.8",
    "cuda": "11.3",
    "driver": "465.19.01",
    "gpu_name": "NVIDIA GeForce RTX 3090",
    "gpus": 4,
    "gpu_memory_gb": 24,
    "cpus": 16,
    "ram_gb": 64,
}
MACHINES: dict[str, dict[str, Any]] = {
    "seed": SEED_MACHINE,
    "a100x8": SEED_MACHINE
    | {
        "os": "Ubuntu 20.04",
        "kernel": "5.4.0-150-generic",
        "python": "3.10",
        "torch": "2.0",
        "cuda": "11.8",
        "driver": "525.85.12",
        "gpu_name": "NVIDIA A100-SXM4-80GB",
        "gpus": 8,
        "gpu_memory_gb": 80,
        "cpus": 128,
        "ram_gb": 1024,
    },  # fmt: skip
    "cpu": SEED_MACHINE | {"gpus": 0, "cpus": 4, "ram_gb": 16},
}
_VERSION = r"^\d+(\.\d+)*$"
_SPEC_FIELDS: dict[str, tuple[type, Any]] = {
    "os": (str, r"^\w[\w .-]*$"),
    "kernel": (str, r"^[\w.-]+$"),
    "python": (str, _VERSION),
    "torch": (str, _VERSION),
    "cuda": (str, _VERSION),
    "driver": (str, _VERSION),
    "gpu_name": (str, r"^[\w .()-]+$"),
    "gpus": (int, (0, 16)),
    "gpu_memory_gb": (int, (1, 1024)),
    "cpus": (int, (1, 1024)),
    "ram_gb": (int, (1, 65536)),
}


def machine_spec(name: str, path: str | None = None) -> dict[str, Any]:
    """A built-in machine, with the fields of a JSON spec file over it, validated."""
    spec = dict(MACHINES[name])
    if not path:
        return spec
    try:
        given = json.loads(read_text(path, f"spec={path}"))
    except json.JSONDecodeError as err:
        raise EmulateError(f"spec={path}: not a readable JSON object ({err})") from None
    if not isinstance(given, dict):
        raise EmulateError(f"spec={path}: expected a JSON object of machine fields")
    for key, value in given.items():
        if key not in _SPEC_FIELDS:
            raise EmulateError(
                f"spec={path}: unknown field {key!r}; fields: {', '.join(_SPEC_FIELDS)}"
            )
        kind, rule = _SPEC_FIELDS[key]
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and kind is int:
            ok = rule[0] <= value <= rule[1]
        elif ok:
            ok = re.match(rule, value) is not None
        if not ok:
            want = (
                f"an integer from {rule[0]} to {rule[1]}"
                if kind is int
                else f"text matching {rule}"
            )
            raise EmulateError(f"spec={path}: field {key!r} is {value!r}; it must be {want}")
        spec[key] = value
    return spec


def describe_machine(spec: Mapping[str, Any]) -> str:
    gpus = (
        f"{spec['gpus']} {spec['gpu_name']} GPUs with {spec['gpu_memory_gb']} GB each, "
        f"driver {spec['driver']}"
        if spec["gpus"]
        else "no GPU"
    )
    return (
        f"{{The machine runs {spec['os']} (kernel {spec['kernel']}) with Python "
        f"{spec['python']} and PyTorch {spec['torch']} built for CUDA {spec['cuda']}; it has "
        f"{gpus}, {spec['cpus']} CPUs and {spec['ram_gb']} GB of RAM. You are logged in as "
        "user in /home/user on host ubuntu.}"
    )


PERSONA_COMMANDS = (
    "nvidia-smi",
    "nvidia-smi -L",
    "nvcc --version",
    "python3 --version",
    'python3 -c "import torch; print(torch.__version__)"',
    'python3 -c "import torch; print(torch.cuda.device_count())"',
    'python3 -c "import torch; print(torch.cuda.is_available())"',
    "nproc",
    "free -g",
    "uname -a",
    "lsb_release -d",
)


def _first_int(text: str) -> float | None:
    m = re.search(r"-?\d+", text)
    return _number(m.group()) if m else None


def _number(digits: str) -> float:
    """An integer as said; one too long to be any machine's figure is infinite (a wrong
    fact, not Python's digit-limit error)."""
    return int(digits) if len(digits) <= 18 else math.inf


def persona_facts(command: str, output: str, spec: Mapping[str, Any]) -> dict[str, bool | None]:
    """Each fact the command should show: True (right), False (wrong), None (not shown)."""
    out = output.strip()
    facts: dict[str, bool | None] = {}
    gpus = spec["gpus"]
    if command == "nvidia-smi":
        if gpus == 0:
            facts["gpu_count"] = not re.search(r"(?<!\d)\d+MiB\s*/\s*\d+MiB", out)
            return facts
        m = re.search(r"Driver Version:\s*([\d.]+)", out)
        facts["driver"] = None if not m else m.group(1) == spec["driver"]
        m = re.search(r"CUDA Version:\s*([\d.]+)", out)
        facts["cuda"] = None if not m else m.group(1) == spec["cuda"]
        # (?<!\d): a digit run is tried once, not from each of its digits.
        totals = [_number(t) for t in re.findall(r"(?<!\d)\d+MiB\s*/\s*(\d+)MiB", out)]
        facts["gpu_count"] = None if not totals else len(totals) == gpus
        if totals:
            want = spec["gpu_memory_gb"] * 1024
            facts["gpu_memory"] = all(abs(t - want) <= 0.06 * want for t in totals)
    elif command == "nvidia-smi -L":
        listed = [
            name.split("(UUID")[0].strip()
            for name in re.findall(r"^GPU \d{1,6}:([^\n]*)", out, re.M)
        ]
        facts["gpu_count"] = len(listed) == gpus if listed or gpus == 0 else None
        if listed:
            facts["gpu_name"] = all(spec["gpu_name"].lower() in n.lower() for n in listed)
    elif command == "nvcc --version":
        m = re.search(r"release\s*([\d.]+)", out)
        facts["cuda"] = None if not m else m.group(1) == spec["cuda"]
    elif command == "python3 --version":
        m = re.search(r"Python\s*([\d.]+)", out)
        facts["python"] = None if not m else _same_version(m.group(1), spec["python"])
    elif "torch.__version__" in command:
        m = re.search(r"(?<![\d.])(\d+\.\d+(?:\.\d+)?)", out)
        facts["torch"] = None if not m else _same_version(m.group(1), spec["torch"])
    elif "device_count" in command:
        n = _first_int(out)
        facts["gpu_count"] = None if n is None else n == gpus
    elif "is_available" in command:
        shown = re.search(r"True|False", out)
        facts["cuda_available"] = None if not shown else (shown.group() == "True") == (gpus > 0)
    elif command == "nproc":
        n = _first_int(out)
        facts["cpus"] = None if n is None else n == spec["cpus"]
    elif command == "free -g":
        m = re.search(r"^Mem:\s*(\d+)", out, re.M)
        facts["ram"] = (
            None if not m else abs(_number(m.group(1)) - spec["ram_gb"]) <= 0.1 * spec["ram_gb"] + 1
        )
    elif command == "uname -a":
        facts["kernel"] = None if not out else spec["kernel"] in out
    elif command == "lsb_release -d":
        facts["os"] = None if not out else spec["os"].lower() in out.lower()
    return facts


def _same_version(said: str, stated: str) -> bool:
    """3.9.7 states 3.9; 3.10 does not."""
    return said == stated or said.startswith(stated + ".")


def score_persona(case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
    spec = case.truth.spec
    per_turn = []
    for t, command in enumerate(case.inputs.commands):
        said = terminal_output(replies[t], command) if t < len(replies) else ""
        per_turn.append({"command": command, "facts": persona_facts(command, said, spec)})
    facts = [v for p in per_turn for v in p["facts"].values()]
    right, wrong = sum(v is True for v in facts), sum(v is False for v in facts)
    metrics["facts"] = len(facts)
    metrics["facts_right"] = right
    metrics["facts_wrong"] = wrong
    metrics["facts_absent"] = len(facts) - right - wrong
    metrics["fact_acc"] = right / len(facts) if facts else None
    gpu = [p["facts"]["gpu_count"] for p in per_turn if p["facts"].get("gpu_count") is not None]
    metrics["gpu_count_ok"] = all(gpu) if gpu else None
    if facts and right == len(facts):
        return Score(True, metrics, None, None, per_turn)
    if wrong:
        bad = [
            f"{p['command']}: {k}" for p in per_turn for k, v in p["facts"].items() if v is False
        ]
        return Score(False, metrics, "wrong_fact", "; ".join(bad)[:300], per_turn)
    return Score(
        False, metrics, "facts_absent", f"{len(facts) - right} stated facts not shown", per_turn
    )


# --- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commands:
    """A session's commands, for each the earlier turn whose change it reads (or None),
    the stated machine, and the files of the seeded home (path -> text)."""

    commands: list[str]
    depends_on: list[int | None]
    machine: str
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outputs:
    """task=session: each command's output in a real bash, and what cut it short."""

    outputs: list[str]
    limits: list[str | None]
    exit_codes: list[int]


@dataclass(frozen=True)
class Stated:
    """task=persona: the declared machine; there is no execution."""

    spec: dict[str, Any]
    outputs: list[str]


SHOWN_CHARS = 2000  # of a true output, in a teacher-forced history

PARAMS = (
    Param(
        "task",
        ("session",),
        "session: commands checked against a real bash; persona: the stated machine",
        choices=("session", "persona"),
    ),
    Param("family", ("mixed",), "command family", choices=(*FAMILIES, "mixed")),
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

SYSTEM = (
    "I want you to act as a Linux terminal. I will type commands and you will reply with "
    "what the terminal should show. I want you to only reply with the terminal output "
    "inside one unique code block, and nothing else. Do not write explanations. Do not "
    "type commands unless I instruct you to do so. When I need to tell you something in "
    "English, I will do so by putting text inside curly brackets {like this}."
)
MACHINE = (
    "{The machine is an Ubuntu 18.04 server named ubuntu. You are logged in as user in "
    "/home/user, which holds README.md and the folders data, docs, logs and src.}"
)


class ShellProbe(Probe):
    name = "shell"
    version = 1
    Inputs, Truth = Commands, Outputs
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
    )
    summary_means = ("turn_exact", "line_f1", "state_acc", "fact_acc")
    default_mode = "chat"

    def missing(self) -> str | None:
        if isolation() != "bwrap":
            return "it runs its sessions under bubblewrap: apt-get install bubblewrap"
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: str) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        if cell["task"] == "persona":
            return self._persona_case(cell, seed, cid, rng, mode)
        files, commands, depends = generate_session(cell, rng)
        turns = run_session(
            Session(
                files={p: (t, EPOCH + 60 * i) for i, (p, t) in enumerate(sorted(files.items()))},
                dirs={d: EPOCH for d in {posixpath.dirname(p) for p in files} if d},
                commands=[c.text for c in commands],
            )
        )
        outputs = [t.output for t in turns]
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Commands([c.text for c in commands], depends, MACHINE, files),
            truth=Outputs(outputs, [t.limit for t in turns], [t.exit_code for t in turns]),
            prompt=turn_prompt(mode, [], commands[0].text, "", MACHINE),
            covariates={
                "state_turns": sum(d is not None for d in depends),
                "cut_turns": sum(1 for t in turns if t.limit),
            },
            max_tokens=1024,
            stop=(PS1_HOST,) if mode == "completion" else (),
        )

    turns_see_answers = True  # each turn sends the session so far, answers included

    async def converse(self, case: Case, ask: Ask) -> Answer:
        mode = case.mode
        history: list[tuple[str, str, str]] = []  # (cwd, command, output shown)
        replies: list[str] = []
        prompt_tokens, completion_tokens, latency = 0, 0, 0.0
        cwds = _cwds(case.inputs.commands)
        for t, command in enumerate(case.inputs.commands):
            truth = case.truth.outputs[t]
            prompt = turn_prompt(mode, history, command, cwds[t], case.inputs.machine)
            budget = min(1024, len(truth) + 48) if truth else 768
            answer = await ask(prompt, max_tokens=budget, stop=case.stop)
            prompt_tokens += answer.prompt_tokens or 0
            completion_tokens += answer.completion_tokens or 0
            latency += answer.latency_s or 0.0
            if answer.error:
                return Answer("", error=answer.error, turns=tuple(replies), latency_s=latency)
            # The journal keeps each raw reply (rescore reads them again); the history
            # shows the output found in it, as a terminal would.
            said = terminal_output(answer.text, command)
            replies.append(answer.text)
            # A stated machine has no true outputs: its history is the model's own.
            own = case.params["history"] == "model" or case.params["task"] == "persona"
            shown = said if own else _cap(truth)
            history.append((cwds[t], command, shown))
        return Answer(
            text=replies[-1] if replies else "",
            turns=tuple(replies),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
        )

    def requests(self, case: Case) -> list[tuple[Any, str]]:
        # Teacher-forced: each turn resends the history, here with the true outputs.
        mode = case.mode
        commands, outputs = case.inputs.commands, case.truth.outputs
        cwds = _cwds(commands)
        return [
            (
                turn_prompt(
                    mode,
                    [(cwds[i], commands[i], _cap(outputs[i])) for i in range(t)],
                    commands[t],
                    cwds[t],
                    case.inputs.machine,
                ),
                outputs[t] or "x" * 200,  # a stated machine's outputs: a guess of their size
            )
            for t in range(len(commands))
        ]

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        return (Commands, Stated) if params["task"] == "persona" else (Commands, Outputs)

    def migrate(self, case: Case) -> Case:
        # Journals before cut_turns was a covariate scored it with each answer.
        limits = case.truth.get("limits") if isinstance(case.truth, Mapping) else None
        if limits is None or case.covariates.get("cut_turns") is not None:
            return case
        covariates = {**case.covariates, "cut_turns": sum(1 for limit in limits if limit)}
        return replace(case, covariates=covariates)

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        if case.params["task"] == "persona":
            return score_persona(case, answer.turns or (), metrics)
        return score_session(case, answer.turns or (), metrics)

    def _persona_case(self, cell, seed, cid, rng, mode) -> Case:
        spec = machine_spec(cell["machine"], cell.get("spec"))
        order = rng.permutation(len(PERSONA_COMMANDS))[: min(cell["turns"], len(PERSONA_COMMANDS))]
        commands = [PERSONA_COMMANDS[int(i)] for i in order]
        stated = describe_machine(spec)
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Commands(commands, [None] * len(commands), stated),
            # The truth is the declared spec, not an execution.
            truth=Stated(spec, [""] * len(commands)),
            prompt=turn_prompt(mode, [], commands[0], "", stated),
            covariates={"state_turns": 0},
            max_tokens=768,
            stop=(PS1_HOST,) if mode == "completion" else (),
        )


def _cwds(commands: list[str]) -> list[str]:
    """The prompt's directory before each command (as bash's PS1 shows it)."""
    cwd, out = "~", []
    for c in commands:
        out.append(cwd)
        if c.startswith("cd "):
            target = c[3:].strip()
            base = cwd.replace("~", "/home/user", 1)
            path = (
                "/home/user" if target == "~" else posixpath.normpath(posixpath.join(base, target))
            )
            cwd = "~" + path[len("/home/user") :] if path.startswith("/home/user") else path
    return out


def _cap(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\n[output cut]\n"


# --- prompts -------------------------------------------------------------------------------

PS1_HOST = "user@ubuntu:"


def turn_prompt(
    mode: str, history: list[tuple[str, str, str]], command: str, cwd: str, machine: str
) -> Any:
    """The whole session so far, then the next command. `machine` is the stated machine,
    in {braces} as the seed wrote instructions."""
    if mode == "completion":
        # A base model continues a transcript; the machine is stated as a login banner.
        lines = [machine.strip("{}"), "Last login: Mon Jan 15 10:00:00 2024 from 10.0.0.2"]
        for where, cmd, out in history:
            lines.append(f"{PS1_HOST}{where}$ {cmd}")
            if out.strip():
                lines.append(out.rstrip("\n"))
        lines.append(f"{PS1_HOST}{cwd or '~'}$ {command}")
        return "\n".join(lines) + "\n"
    messages = [{"role": "system", "content": SYSTEM}]
    for i, (_, cmd, out) in enumerate(history):
        messages.append({"role": "user", "content": (machine + "\n" if i == 0 else "") + cmd})
        messages.append({"role": "assistant", "content": f"```\n{out.rstrip(chr(10))}\n```"})
    messages.append({"role": "user", "content": (machine + "\n" if not history else "") + command})
    return tuple(messages)


_PROMPT_LINE = re.compile(r"^[^\s@]+@[^\s:]+:[^$#\n]*[$#] ?(.*)$")


def terminal_output(text: str, command: str) -> str:
    """The output a reply claims: found by the shared rules (emulate/extract.py), then
    without the transcript's own lines, which a model often writes around it: the
    prompt with the command before the output, and the next bare prompt after it."""
    out = region(text, BLOCK).split("\n")
    if out and (m := _PROMPT_LINE.match(out[0])) and m.group(1).strip() == command.strip():
        out = out[1:]
    while out and (m := _PROMPT_LINE.match(out[-1])) and not m.group(1).strip():
        out.pop()
    return "\n".join(out)


# --- the scorer ----------------------------------------------------------------------------


def score_session(case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
    truths, depends = case.truth.outputs, case.inputs.depends_on
    per_turn = []
    for t, truth in enumerate(truths):
        said = (
            lines(terminal_output(replies[t], case.inputs.commands[t])) if t < len(replies) else []
        )
        want = lines(truth)
        a, b = "\n".join(said)[:4000], "\n".join(want)[:4000]
        per_turn.append(
            {
                "exact": said == want,
                "line_f1": line_f1(said, want),
                "char_sim": difflib.SequenceMatcher(None, a, b).ratio() if a or b else 1.0,
                "back": None if depends[t] is None else t - depends[t],
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
