"""Markov: does the model's next-symbol distribution follow the chain that made the
sequence, the counts in it, or something else?

Karpathy's "baby GPT" (two symbols, a context of three) is a finite-state Markov
chain over 8 states. Trained on 111101111011110 it gives 101 -> 1 at 79% where the
data says 100%, and sharp rows to states it never saw (000 -> 1 at 73%, where one
might expect 50%): the transformer's inductive bias. This probe asks a language
model the same question in context: shown a sequence drawn from a chain, then every
state's symbols, where does its next-token probability go?

Read top to bottom: the chains, the three truths per state, the cases, the prompt
(one request per state, one token of top logprobs each), the scorer.

Truths (each a mapping from the state, written as its symbols, to the next-symbol
probabilities in vocabulary order):
- chain:    the chain's true transition row. For chain=seed, the founding sequence's
            own transitions (the data), and an even row for states it never shows.
- counts:   what an ideal in-context estimator sees: the shown sequence's counts of
            each state's next symbol with add-one (Laplace) smoothing,
            (n(s, a) + 1) / (n(s) + vocab); an even row for states never followed.
- baby_gpt: Karpathy's model trained on the shown sequence with his settings
            (probes/babygpt.py).

Each symbol must be one token for the model. symbols=digits writes 0..vocab-1
together: the embedded model's tokenizer (Gemma 3) splits digits, so
"111101111011110" is 15 tokens (checked with llama-server's /tokenize). tiktoken's
encodings group digits in threes and split " 1" into a space and a digit, so for
OpenAI models use symbols=letters: A..D separated by spaces, one token each there
("A", " B", ...) and in Gemma's tokenizer too.

Metrics: total variation and KL(truth || model) in bits (model rows floored at 1e-6)
to each truth, states seen in the sequence and unseen apart; the entropy of the
model's rows on unseen states (and, as a covariate, the baby GPT's); the mass the
model put off the vocabulary among its top alternatives; `top_match`, the share of
seen states whose most likely next symbol is the chain's. `correct`: every seen
state's is.
Error types: api_error, scorer_error, no_logprobs, bad_logprobs, off_vocab, wrong_top.

The picture (`emulate report`): Karpathy's own figure, states as nodes and arrows
labelled with percentages, for the chain, the counts, the baby GPT and the model,
side by side, laid out and drawn with networkx.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Mode, Prompt, Row, Score, TokenLogprob, case_id, case_rng
from emulate.probe import HARNESS_ERRORS, Ask, Param, Probe, covariate, metric
from emulate.prompt import PerMode, Rendered, render
from emulate.scoring import is_logprob

from . import babygpt

SEED_SEQUENCE = "111101111011110"  # Karpathy's; vocab 2, context 3
TOP_LOGPROBS = 20  # OpenAI's maximum; llama-server gives as many as asked
FLOOR = 1e-6  # model probabilities are floored here for KL
# The baby GPT's columns agree across CPUs to about 1e-7, not digit for digit: a replay
# elsewhere reproduces them within this (relative and absolute; emulate.probe.Column).
TRAINED = 1e-4


# --- the chains ----------------------------------------------------------------------


# How symbols are written, and what goes between them.
ALPHABETS = {"digits": ("0123", ""), "letters": ("ABCD", " ")}


def state_name(state: Sequence[int], symbols: str = "digits") -> str:
    """A state as the truths' keys write it: its symbols, run together ("101")."""
    return "".join(ALPHABETS[symbols][0][s] for s in state)


def _sep(case: Case) -> str:
    return ALPHABETS[case.params["symbols"]][1]


def random_chain(vocab: int, context: int, sharpness: int, rng: np.random.Generator):
    """Each state's row drawn from a symmetric Dirichlet with concentration
    2**-sharpness: 0 gives rows spread evenly over the simplex, 3 nearly one-hot rows."""
    alpha = np.full(vocab, 2.0**-sharpness)
    return {s: rng.dirichlet(alpha).tolist() for s in babygpt.states(vocab, context)}


def cycle_chain(vocab: int, context: int):
    """Deterministic: the next symbol is the last one plus one (mod vocab), so the
    sequence cycles 0, 1, ..., vocab-1; the rule holds in states the cycle never shows."""
    return {
        s: [1.0 if a == (s[-1] + 1) % vocab else 0.0 for a in range(vocab)]
        for s in babygpt.states(vocab, context)
    }


def transitions(sequence: Sequence[int], vocab: int, context: int) -> dict[tuple, list[int]]:
    """How often each state is followed by each symbol in the sequence."""
    counts = {s: [0] * vocab for s in babygpt.states(vocab, context)}
    for i in range(len(sequence) - context):
        counts[tuple(sequence[i : i + context])][sequence[i + context]] += 1
    return counts


def seed_chain(vocab: int = 2, context: int = 3):
    """The founding sequence's own transitions; an even row where it shows none."""
    return {
        s: [c / sum(n) for c in n] if sum(n) else [1 / vocab] * vocab
        for s, n in transitions([int(c) for c in SEED_SEQUENCE], vocab, context).items()
    }


def walk(
    chain, start: Sequence[int], context: int, length: int, rng: np.random.Generator
) -> list[int]:
    """`length` symbols: `start`, then each next symbol drawn from the chain."""
    seq = list(start)
    while len(seq) < length:
        row = chain[tuple(seq[-context:])]
        seq.append(int(rng.choice(len(row), p=row)))
    return seq[:length]


# --- the truths ----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    sequence: str  # as the prompt shows it
    symbols: list  # the vocabulary in order, e.g. ["0", "1"]
    states: list  # every state, e.g. ["000", "001", ...]
    seen: list  # the states followed by a symbol in the sequence


@dataclass(frozen=True)
class Truth:
    chain: dict  # state -> next-symbol probabilities, vocabulary order
    counts: dict
    baby_gpt: dict


MarkovCase = Case[Inputs, Truth]


def counts_rows(sequence: Sequence[int], vocab: int, context: int) -> dict[tuple, list[float]]:
    """Add-one smoothing: (n(s, a) + 1) / (n(s) + vocab)."""
    return {
        s: [(c + 1) / (sum(n) + vocab) for c in n]
        for s, n in transitions(sequence, vocab, context).items()
    }


# --- cases ---------------------------------------------------------------------------

CHAINS = ("seed", "random", "cycle")
PARAMS = (
    Param("chain", CHAINS, "seed: Karpathy's sequence (vocab 2, context 3); random: "
          "Dirichlet rows; cycle: next = last + 1", choices=CHAINS),
    Param("vocab", (2,), "symbols (the digits 0..vocab-1)", lo=2, hi=4),
    Param("context", (3,), "the chain's order: the state is the last `context` symbols",
          lo=1, hi=4),
    Param("length", (15, 60), "symbols shown (chain=seed at 15 is the founding sequence "
          "itself)", lo=15, hi=400),
    Param("sharpness", (1,), "chain=random: Dirichlet concentration 2**-sharpness", lo=0, hi=3),
    Param("symbols", ("digits",), "digits: 0..3 written together (Gemma); letters: A..D with "
          "spaces (tiktoken)", choices=tuple(ALPHABETS)),
)  # fmt: skip


class MarkovProbe(Probe):
    name = "markov"
    version = 1
    Inputs = Inputs
    Truth = Truth
    summary = "next-symbol distributions on a Markov chain's sequence, vs chain, counts, baby GPT"
    params = PARAMS
    columns = (
        metric("top_match"),
        *(
            # The baby GPT's rows come from training: equal across CPUs to about 1e-7.
            metric(f"{kind}_{truth}_{group}", tolerance=TRAINED if truth == "gpt" else None)
            for kind in ("tv", "kl")
            for truth in ("chain", "counts", "gpt")
            for group in ("seen", "unseen")
        ),
        metric("entropy_unseen"),
        metric("off_vocab"),
        covariate("states"),
        covariate("seen_states"),
        covariate("gpt_entropy_unseen", float, tolerance=TRAINED),
    )
    error_types = (*HARNESS_ERRORS, "no_logprobs", "bad_logprobs", "off_vocab", "wrong_top")
    default_mode = "completion"
    summary_axes = ("chain",)
    summary_means = ("tv_chain_seen", "tv_counts_seen", "tv_gpt_unseen", "off_vocab")

    def missing(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "it trains the baby GPT in PyTorch for a truth: pip install -e '.[torch]'"
        return None

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        if cell["chain"] == "seed" and (cell["vocab"], cell["context"]) != (2, 3):
            return "chain=seed is binary with a context of 3: use vocab=2 context=3"
        if cell["length"] <= cell["context"]:
            return (
                f"length {cell['length']} leaves no transition after a context of {cell['context']}"
            )
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: Mode) -> MarkovCase:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        vocab, context = cell["vocab"], cell["context"]
        if cell["chain"] == "seed":
            # The founding sequence, then (past 15 symbols) walks of its own transitions.
            chain, start = seed_chain(), [int(c) for c in SEED_SEQUENCE]
        elif cell["chain"] == "random":
            chain = random_chain(vocab, context, cell["sharpness"], rng)
            start = rng.integers(0, vocab, size=context).tolist()
        else:
            chain, first = cycle_chain(vocab, context), int(rng.integers(0, vocab))
            start = [(first + i) % vocab for i in range(context)]  # on the cycle from the start
        seq = walk(chain, start, context, cell["length"], rng)
        everyone = babygpt.states(vocab, context)
        followed = transitions(seq, vocab, context)
        alphabet, sep = ALPHABETS[cell["symbols"]]
        seen = [state_name(s, cell["symbols"]) for s in everyone if sum(followed[s])]
        gpt = babygpt.cached_rows(seq, vocab, context)
        truth = Truth(
            chain={state_name(s, cell["symbols"]): chain[s] for s in everyone},
            counts={
                state_name(s, cell["symbols"]): r
                for s, r in counts_rows(seq, vocab, context).items()
            },
            baby_gpt={state_name(s, cell["symbols"]): gpt[s] for s in everyone},
        )
        inputs = Inputs(
            sequence=sep.join(alphabet[s] for s in seq),
            symbols=list(alphabet[:vocab]),
            states=[state_name(s, cell["symbols"]) for s in everyone],
            seen=seen,
        )
        unseen = [s for s in inputs.states if s not in seen]
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=inputs,
            truth=truth,
            prompt=state_prompt(mode, inputs, inputs.states[0], sep),
            covariates={
                "states": len(everyone),
                "seen_states": len(seen),
                "gpt_entropy_unseen": _mean([_entropy(truth.baby_gpt[s]) for s in unseen]),
            },
            chance=math.prod(len(_top(truth.chain[s])) / vocab for s in seen),
            top_logprobs=TOP_LOGPROBS,
        )

    async def converse(self, case: Case, ask: Ask) -> Answer:
        """One request per state, each one token with its top alternatives; the answer
        holds each state's first token's logprobs, in state order."""
        sep = _sep(case)
        firsts: list[TokenLogprob] = []
        texts: list[str] = []
        prompt_tokens = completion_tokens = 0
        latency = 0.0
        for state in case.inputs.states:
            prompt = state_prompt(case.mode, case.inputs, state, sep)
            got = await ask(
                prompt.prompt, max_tokens=prompt.max_tokens, top_logprobs=case.top_logprobs
            )
            latency += got.latency_s or 0.0
            if got.error:
                return Answer("", error=got.error, turns=tuple(texts), latency_s=latency)
            prompt_tokens += got.prompt_tokens or 0
            completion_tokens += got.completion_tokens or 0
            texts.append(got.text)
            if not got.logprobs:
                # The runner stops the run: scoring absent logprobs would be a lie.
                return Answer(got.text, None, turns=tuple(texts), latency_s=latency)
            firsts.append(got.logprobs[0])
        return Answer(
            text=" ".join(texts),
            logprobs=tuple(firsts),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            turns=tuple(texts),
        )

    def requests(self, case: Case) -> list[tuple[Prompt, str]]:
        sep = _sep(case)
        return [
            (state_prompt(case.mode, case.inputs, s, sep).prompt, "1") for s in case.inputs.states
        ]

    def answer_text(self, case: Case) -> str:
        return " ".join(
            case.inputs.symbols[int(np.argmax(case.truth.chain[s]))] for s in case.inputs.states
        )

    def score(self, case: Case, answer: Answer) -> Score:
        return score(case, answer)

    def figures(self, rows: Sequence[Row], per_case: bool = False) -> dict[str, bytes]:
        """The four graphs of the founding case (else the first case drawable), or of
        every drawable case with `per_case`."""
        cases = [self.typed(r.case) for r in rows]
        drawable = [(r, c) for r, c in zip(rows, cases, strict=True)
                    if len(c.inputs.states) <= DRAWN_STATES]  # fmt: skip
        if not per_case:
            founding = [(r, c) for r, c in drawable if c.params["chain"] == "seed"]
            drawable = (founding or drawable)[:1]
        pictures = {}
        for row, case in drawable:
            parsed = row.score.parsed or {}
            title = f"{row.model}: case {case.id}, sequence {case.inputs.sequence[:60]}"
            pictures[f"markov-{case.id}.png"] = draw(case, parsed, title)
        return pictures


# --- the prompt ----------------------------------------------------------------------

CHAT = "Here is a sequence of symbols. Continue it with the single next symbol, and nothing else."


def state_prompt(mode: Mode, inputs: Inputs, state: str, sep: str) -> Rendered:
    """The sequence, then the state's symbols: the model's next token is its guess of
    the symbol that follows that state. Completion mode shows the bare sequence, as
    the baby GPT sees its data; chat asks for the next symbol. One token is the answer."""
    text = inputs.sequence + sep + sep.join(state)
    return render(mode, text, intro=PerMode(chat=CHAT, completion=""), budget=1)


# --- the scorer ----------------------------------------------------------------------


def model_row(first: TokenLogprob, symbols: Sequence[str]) -> tuple[list[float] | None, float]:
    """The model's distribution over the vocabulary from one token's top alternatives
    (tokens that are a symbol with spaces around count for it), renormalised; and the
    mass among the alternatives that was not on a symbol."""
    top = first.top or ((first.token, first.logprob),)
    mass = dict.fromkeys(symbols, 0.0)
    for token, logprob in top:
        if token.strip() in mass:
            mass[token.strip()] += math.exp(min(logprob, 0.0))
    total = sum(mass.values())
    off = max(0.0, 1.0 - total)
    if total <= 0:
        return None, off
    return [mass[a] / total for a in symbols], off


def _top(row: Sequence[float]) -> list[int]:
    best = max(row)
    return [i for i, p in enumerate(row) if p >= best - 1e-12]


def _tv(p: Sequence[float], q: Sequence[float]) -> float:
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True))


def _kl(truth: Sequence[float], model: Sequence[float]) -> float:
    """KL(truth || model) in bits, the model floored at FLOOR."""
    return sum(t * math.log2(t / max(m, FLOOR)) for t, m in zip(truth, model, strict=True) if t > 0)


def _entropy(row: Sequence[float]) -> float:
    return -sum(p * math.log2(p) for p in row if p > 0)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score(case: MarkovCase, answer: Answer) -> Score:
    metrics = MarkovProbe().blank_metrics(case)
    inputs, truth = case.inputs, case.truth
    if not answer.logprobs or len(answer.logprobs) != len(inputs.states):
        got = len(answer.logprobs or ())
        why = f"logprobs for {got} of {len(inputs.states)} states"
        return Score(False, metrics, "no_logprobs", why)
    for first in answer.logprobs:
        top = first.top or ((first.token, first.logprob),)
        if bad := next((lp for _, lp in top if not is_logprob(lp)), None):
            return Score(False, metrics, "bad_logprobs", f"{bad!r} is not a log probability")
    rows, offs = {}, []
    for state, first in zip(inputs.states, answer.logprobs, strict=True):
        rows[state], off = model_row(first, inputs.symbols)
        offs.append(off)
    metrics["off_vocab"] = float(np.mean(offs))
    seen = set(inputs.seen)
    for group, states in (
        ("seen", inputs.seen),
        ("unseen", [s for s in inputs.states if s not in seen]),
    ):
        defined = {s: row for s in states if (row := rows[s]) is not None}
        for name, table in (
            ("chain", truth.chain),
            ("counts", truth.counts),
            ("gpt", truth.baby_gpt),
        ):
            metrics[f"tv_{name}_{group}"] = _mean([_tv(r, table[s]) for s, r in defined.items()])
            metrics[f"kl_{name}_{group}"] = _mean([_kl(table[s], r) for s, r in defined.items()])
        if group == "unseen":
            metrics["entropy_unseen"] = _mean([_entropy(r) for r in defined.values()])
    shown = {s: [round(p, 4) for p in r] if r is not None else None for s, r in rows.items()}
    missing = [s for s in inputs.states if rows[s] is None]
    matches = [
        (row := rows[s]) is not None and int(np.argmax(row)) in _top(truth.chain[s])
        for s in inputs.seen
    ]
    metrics["top_match"] = _mean([float(m) for m in matches])
    if missing:
        why = (
            f"no vocabulary symbol among the top alternatives for state(s) {', '.join(missing[:4])}"
        )
        return Score(False, metrics, "off_vocab", why, shown)
    if not all(matches):
        wrong = [s for s, m in zip(inputs.seen, matches, strict=True) if not m]
        why = (
            f"most likely next symbol differs from the chain's in {len(wrong)} of "
            f"{len(matches)} seen states ({', '.join(wrong[:4])})"
        )
        return Score(False, metrics, "wrong_top", why, shown)
    return Score(True, metrics, None, None, shown)


# --- the picture ---------------------------------------------------------------------

DRAWN_STATES = 16  # more states than this make an unreadable drawing


def draw(case: Case, model_rows: Mapping[str, Sequence[float] | None], title: str = "") -> bytes:
    """Four transition graphs side by side (chain, counts, baby GPT, model): each state a
    node, an arrow to the state each next symbol leads to, labelled with its
    probability; states seen in the sequence filled. PNG bytes."""
    import networkx as nx
    from matplotlib.figure import Figure

    inputs, truth = case.inputs, case.truth
    tables = {
        "chain": truth.chain,
        "counts (add-one)": truth.counts,
        "baby GPT": truth.baby_gpt,
        "model": model_rows,
    }
    fig = Figure(figsize=(20, 5.4), dpi=90, layout="constrained")
    axes = fig.subplots(1, 4)
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(inputs.states)
    for state in inputs.states:
        for a in inputs.symbols:
            graph.add_edge(state, (state + a)[1:])
    layout = nx.kamada_kawai_layout(nx.Graph(graph))
    seen = set(inputs.seen)
    for ax, (name, rows) in zip(axes, tables.items(), strict=True):
        g = nx.DiGraph()
        g.add_nodes_from(inputs.states)
        labels = {}
        for state in inputs.states:
            row = rows.get(state) if rows else None
            for a, p in zip(inputs.symbols, row or (), strict=False):
                if p >= 0.005:
                    target = (state + a)[1:]
                    g.add_edge(state, target, weight=p)
                    labels[(state, target)] = f"{p:.0%}"
        colors = ["#9ecae1" if s in seen else "#f0f0f0" for s in g.nodes]
        nx.draw_networkx_nodes(g, layout, ax=ax, node_color=colors, edgecolors="#555",
                               node_size=900)  # fmt: skip
        nx.draw_networkx_labels(g, layout, ax=ax, font_size=9)
        widths = [0.5 + 2.5 * g.edges[e]["weight"] for e in g.edges]
        style = "arc3,rad=0.15"
        nx.draw_networkx_edges(g, layout, ax=ax, width=widths, node_size=900, arrowsize=12,
                               connectionstyle=style, edge_color="#444")  # fmt: skip
        nx.draw_networkx_edge_labels(g, layout, edge_labels=labels, ax=ax, font_size=7,
                                     connectionstyle=style, label_pos=0.35)  # fmt: skip
        ax.set_title(name, fontsize=11)
        ax.set_axis_off()
    fig.suptitle(title or f"{case.probe} case {case.id}: {inputs.sequence[:60]}", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
