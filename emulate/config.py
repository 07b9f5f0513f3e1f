"""A run's configuration: everything that decides its results, saved as run.json."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import redact
from .errors import EmulateError
from .model_config import LOCAL, ModelConfig, default_base_url
from .probe import Probe, check_grid
from .prompt import check_mode
from .registry import get_probe, register

# More API errors than this (a fraction of the cases, or a count) fail the run.
DEFAULT_MAX_ERRORS = 0.1
DEFAULT_CONCURRENCY = 4
# The embedded server gets one slot per concurrent request; on 2 CPU cores one slot
# gives the most cases per minute (bench/throughput.py).
DEFAULT_LOCAL_CONCURRENCY = 1
# Seconds between a batch's status checks (`emulate batch submit`).
DEFAULT_POLL_S = 30.0


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's results. Saved as run.json; `--config` replays it."""

    probe: str
    grid: Mapping[str, Sequence[Any]]
    n: int = 3
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    skip_impossible: bool = False  # run the possible cells of a grid, skip the others

    def __post_init__(self) -> None:
        if not isinstance(self.probe, str):
            raise EmulateError(f"probe {self.probe!r}: must be a probe's name")
        if not isinstance(self.grid, Mapping):
            raise EmulateError(
                f'grid {self.grid!r}: must map parameter names to values, e.g. {{"size": [3, 4]}}'
            )
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise EmulateError(f"--n {self.n!r}: must be a whole number of at least 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise EmulateError(f"--seed {self.seed!r}: must be a whole number of 0 or more")
        if not isinstance(self.skip_impossible, bool):
            raise EmulateError(f"skip_impossible {self.skip_impossible!r}: must be true or false")

    @functools.cached_property  # a frozen config: hashed once, not once per journal row
    def run_id(self) -> str:
        """A hash of the configuration: the same run has the same id on any machine."""
        key = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "n": self.n,
            "seed": self.seed,
            # Only when set, so run ids from before the option existed stay the same.
            **({"skip_impossible": True} if self.skip_impossible else {}),
            # Unset options are left out, so adding an option later keeps old run ids.
            # Not api_key_env: a run.json names no variable whose value goes to a server
            # (a run.json from elsewhere could name any secret); --api-key-env does.
            "model": {
                k: v for k, v in asdict(self.model).items() if v is not None and k != "api_key_env"
            }
            | {"extra_body": dict(self.model.extra_body)}
            # Credentials in the URL are used, never stored (emulate/redact.py).
            | ({"base_url": redact.url(self.model.base_url)} if self.model.base_url else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunConfig:
        if not isinstance(data, Mapping):
            raise EmulateError("a run config is a JSON object, as run.json holds")
        missing = [k for k in ("probe", "grid", "n", "seed", "model") if k not in data]
        if missing:
            raise EmulateError(f"run config lacks {', '.join(missing)}")
        model = data["model"]
        if not isinstance(model, Mapping):
            raise EmulateError(f"model {model!r}: must be a JSON object, as run.json holds")
        model = {k: v for k, v in model.items() if k != "api_key_env"}  # see to_json
        unknown = sorted(set(model) - set(ModelConfig.__dataclass_fields__))
        if unknown:
            raise EmulateError(f"model has unknown fields: {', '.join(unknown)}")
        stop = model.get("stop")
        if stop is not None and not isinstance(stop, list):
            raise EmulateError(f"--stop {stop!r}: must be a list of texts")
        return cls(
            probe=data["probe"],
            grid=data["grid"],
            n=data["n"],
            seed=data["seed"],
            model=ModelConfig(**{**model, **({"stop": tuple(stop)} if stop is not None else {})}),
            skip_impossible=data.get("skip_impossible", False),
        )


def load_config(path: str | Path) -> RunConfig:
    """A run.json (or a bare config object); any problem is one EmulateError naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmulateError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise EmulateError(f"--config {path} is a folder: pass its run.json") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EmulateError(f"--config {path}: cannot read it ({err})") from None
    except json.JSONDecodeError as err:
        raise EmulateError(f"--config {path}: not valid JSON ({err})") from None
    try:
        return RunConfig.from_json(data.get("config", data) if isinstance(data, dict) else data)
    except EmulateError as err:
        raise EmulateError(f"--config {path}: {err}") from None


def parse_max_errors(text: str) -> int | float:
    """`5` is a count; `0.1` and `10%` are fractions of the run's cases."""
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise EmulateError(
            f"--max-errors {text!r}: give a count (5) or a fraction (0.1, 10%)"
        ) from None


Grid = Mapping[str, Sequence[Any] | Any]


def probe_name(probe: str | Probe) -> str:
    return probe if isinstance(probe, str) else register(probe)


def default_mode(probe: str, model: str) -> str:
    """Completion for the embedded base model (it continues documents); else the probe's."""
    return "completion" if model == LOCAL else get_probe(probe).default_mode


def make_config(
    probe: str | Probe,
    grid: Grid | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
    model: str = LOCAL,
    base_url: str | None = None,
    api_key_env: str | None = None,
    mode: str | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    top_logprobs: int = 0,
    extra_body: Mapping[str, Any] | None = None,
    skip_impossible: bool = False,
) -> RunConfig:
    """A validated RunConfig, with the probe's defaults filled in. `probe` is a name or a
    Probe object (a script's own probe, registered under its name for the process).
    `base_url` defaults to OPENAI_BASE_URL where it is set (for any model but the
    embedded one); `api_key_env` names the variable holding that server's key (OpenAI's
    API takes OPENAI_API_KEY, and no other server gets it). `n` defaults to the
    probe's `default_n`."""
    probe = probe_name(probe)
    p = get_probe(probe)
    n = p.default_n if n is None else n
    if base_url is None:
        base_url = default_base_url(model)
    extra_body = dict(extra_body or {})
    if model == LOCAL and base_url is None:
        # llama-server caches prompts by default, which can change results (the seed
        # goes in the body too, so sampling at temperature > 0 repeats); a user's
        # --extra-body adds to this, and can set cache_prompt itself.
        extra_body = {"cache_prompt": False} | extra_body
    return RunConfig(
        probe=probe,
        grid=check_grid(p, grid or {}),
        n=n,
        seed=seed,
        skip_impossible=skip_impossible,
        model=ModelConfig(
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            mode=check_mode(mode or default_mode(probe, model)),
            temperature=temperature,
            max_tokens=max_tokens,
            stop=tuple(stop) if stop is not None else None,
            top_logprobs=top_logprobs,
            seed=seed,
            extra_body=dict(extra_body),
        ),
    )
