"""The data that flows through a run: Case -> Answer -> Score -> Row."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

if TYPE_CHECKING:
    import numpy as np

# A chat prompt is a tuple of {"role", "content"} messages; a completion prompt is text.
Prompt = str | tuple[Mapping[str, str], ...]
# How a prompt is written: chat messages, or one text a base model continues.
Mode = Literal["chat", "completion"]

# A case's inputs and truth: the probe's own dataclasses (a bare `Case` is Case[Any, Any]).
InputsT = TypeVar("InputsT")
TruthT = TypeVar("TruthT")


def case_id(probe: str, version: int, params: Mapping[str, Any], seed: int) -> str:
    """Stable across machines and runs: the same case has the same id everywhere."""
    key = json.dumps([probe, version, dict(sorted(params.items())), seed], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def case_rng(case_id: str) -> np.random.Generator:
    """The case's own random stream, derived from its id so it never depends on grid order."""
    import numpy as np  # the probes' import, not the CLI's start-up

    return np.random.default_rng(int(case_id, 16))


@dataclass(frozen=True)
class Case(Generic[InputsT, TruthT]):
    id: str
    probe: str
    version: int
    params: Mapping[str, Any]
    seed: int
    # The probe's own dataclasses (Probe.Inputs, Probe.Truth): what the prompt shows, and
    # the right answer. Read back from JSON they are dicts until Probe.typed(case).
    inputs: InputsT
    truth: TruthT
    prompt: Prompt
    # Answers of known wrong operations (e.g. the flipped kernel), each scored as
    # its own error type rather than as a plain miss.
    foils: Mapping[str, Any] = field(default_factory=dict)
    # Known before asking (difficulty measures, the truth's status): typed columns the
    # probe declares.
    covariates: Mapping[str, float | int | bool | str | None] = field(default_factory=dict)
    # The accuracy of guessing (None where the probe defines no guess).
    chance: float | None = None
    mode: Mode = "chat"
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0  # > 0: the probe reads this many alternatives per token

    def to_json(self, typed: bool = False) -> dict[str, Any]:
        """The case as JSON values; with `typed`, its inputs and truth stay the probe's
        dataclasses, for json.dumps(default=dataclass_fields) to write without
        asdict()'s deep copy (a journal row is written per case)."""
        # Field by field rather than asdict(), which deep-copies everything: the probe's
        # typed inputs and truth are the only nested dataclasses.
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        for f in ("inputs", "truth"):
            if is_dataclass(d[f]) and not typed:
                d[f] = asdict(d[f])
        d["params"] = dict(self.params)
        d["foils"] = dict(self.foils)
        d["covariates"] = dict(self.covariates)
        d["prompt"] = (
            self.prompt if isinstance(self.prompt, str) else [dict(m) for m in self.prompt]
        )
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Case[Any, Any]:
        """A case as `to_json` wrote it (a journal's, or a line of `emulate cases`).

        Journals from before chance and mode were fields carry chance among the
        covariates, and no mode: both are read into their fields."""
        d = dict(data)
        prompt = d["prompt"]
        d["prompt"] = prompt if isinstance(prompt, str) else tuple(dict(m) for m in prompt)
        d["stop"] = tuple(d.get("stop") or ())
        covariates = dict(d.get("covariates") or {})
        if "chance" in covariates and d.get("chance") is None:
            d["chance"] = covariates.pop("chance")
        d["covariates"] = covariates
        d.setdefault("mode", "completion" if isinstance(prompt, str) else "chat")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log probability and the top alternatives.

    OpenAI's chat shape, its legacy completions shape and llama-server's shape
    all normalise to this (see model.normalise_logprobs).
    """

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Answer:
    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None  # the request failed; text is then empty
    # Multi-turn probes: each turn's raw reply, in order (text then holds the last).
    turns: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        if self.logprobs is not None:
            d["logprobs"] = [
                {"token": t.token, "logprob": t.logprob, "top": [list(a) for a in t.top]}
                for t in self.logprobs
            ]
        if self.turns is not None:
            d["turns"] = list(self.turns)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if d.get("logprobs") is not None:
            d["logprobs"] = tuple(
                TokenLogprob(t["token"], t["logprob"], tuple(tuple(a) for a in t.get("top") or ()))
                for t in d["logprobs"]
            )
        if d.get("turns") is not None:
            d["turns"] = tuple(d["turns"])
        return cls(**d)


@dataclass(frozen=True)
class Score:
    correct: bool
    metrics: Mapping[str, float | int | bool | None]
    error_type: str | None = None  # a short category: "unparseable", "flipped_kernel", ...
    reason: str | None = None  # a sentence a person can read
    parsed: Any = None  # the parsed answer, JSON-able


@dataclass(frozen=True)
class Row:
    """One finished case: what the journal holds, one JSON line each."""

    run_id: str
    model: str
    server: str
    mode: str
    case: Case
    answer: Answer
    score: Score

    def to_json(self, typed: bool = False) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "server": self.server,
            "mode": self.mode,
            "case": self.case.to_json(typed),
            "answer": self.answer.to_json(),
            "score": {f: getattr(self.score, f) for f in self.score.__dataclass_fields__}
            | {"metrics": dict(self.score.metrics)},
        }

    def to_line(self) -> str:
        """The row as its journal line (JSON, no newline): the same text as
        json.dumps(to_json()), written without copying the case's inputs and truth."""
        return json.dumps(self.to_json(typed=True), ensure_ascii=False, default=dataclass_fields)

    @classmethod
    def from_json(cls, data: Any) -> Row:
        """A journal line as `to_json` wrote it, whichever version of emulate wrote it:
        the one place a journal row is read by its keys. The case's inputs and truth
        stay JSON until `Probe.typed`. ValueError if `data` is no journal row."""
        try:
            case, answer, score = data["case"], data["answer"], data["score"]
            if not isinstance(case["id"], str) or not isinstance(case["params"], Mapping):
                raise TypeError
            return cls(
                run_id=data["run_id"],
                model=data["model"],
                server=data["server"],
                mode=data["mode"],
                case=Case.from_json(case),
                answer=Answer.from_json(answer),
                score=Score(**{k: v for k, v in score.items() if k in Score.__dataclass_fields__}),
            )
        except (KeyError, TypeError, AttributeError):
            raise ValueError("not an emulate journal row") from None

    @property
    def error(self) -> str | None:
        """The request's error (an API error or timeout), if it failed."""
        return self.answer.error


def dataclass_fields(value: Any) -> dict[str, Any]:
    """json.dumps' `default` for dataclasses: their fields, in order, as asdict()
    gives them (the encoder goes on into the values)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
