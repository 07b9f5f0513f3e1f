"""What a command's flags ask for: the run's RunConfig and RunOptions."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace

from emulate import api, redact
from emulate.config import DEFAULT_MAX_ERRORS, RunConfig, load_config, parse_max_errors
from emulate.errors import EmulateError
from emulate.journal import RUN_JSON
from emulate.model_config import LOCAL, ModelSpec, load_models, parse_model
from emulate.pipeline.options import RunOptions
from emulate.probe import parse_grid
from emulate.registry import get_probe

from .flags import CONFIG_FLAGS


def grid_of(probe: str, specs: Sequence[str] | None) -> dict:
    return parse_grid(get_probe(probe), specs or [])


def run_config_of(args: argparse.Namespace) -> RunConfig:
    if args.config:
        config = load_config(args.config)
        if args.base_url and _restores_credentials(config.model.base_url, args.base_url):
            # run.json keeps URLs without their credentials; the same URL with them is the
            # way to repeat such a run.
            model = replace(config.model, base_url=args.base_url)
            config, args.base_url = replace(config, model=model), None
        if args.api_key_env:  # where the key is kept is the machine's, not the run's
            config = replace(config, model=replace(config.model, api_key_env=args.api_key_env))
        given = [f for f in CONFIG_FLAGS if getattr(args, f) not in (None, [])]
        if given:
            flags = ", ".join("-P" if f == "params" else "--" + f.replace("_", "-") for f in given)
            raise EmulateError(
                f"--config {args.config} fixes the run; {flags} cannot change it "
                f"(edit a copy of {RUN_JSON} instead)"
            )
        if redact.MASK in (config.model.base_url or ""):
            raise EmulateError(
                f"--config {args.config}: its base URL had credentials, which emulate never "
                "stores; pass the whole URL again with --base-url"
            )
        if args.probe and args.probe != config.probe:
            raise EmulateError(f"--config is a {config.probe} run, not {args.probe}")
        return config
    if not args.probe:
        raise EmulateError("name a probe (see `emulate probes`) or pass --config run.json")
    extra = extra_body_of(args)
    (spec,) = models_of(args) or [ModelSpec(LOCAL)]
    name = spec.model
    if spec.base_url:
        if args.base_url:
            raise EmulateError(f"--model {name}@{spec.base_url} names its URL: drop --base-url")
        args.base_url = spec.base_url
    if args.base_url and name == LOCAL:
        raise EmulateError("--base-url needs --model NAME (the model the server serves)")
    return api.make_config(
        args.probe,
        grid_of(args.probe, args.params),
        n=args.n,
        seed=args.seed or 0,
        model=name,
        base_url=args.base_url,
        api_key_env=spec.api_key_env or args.api_key_env,
        mode=args.mode,
        temperature=args.temperature or 0.0,
        max_tokens=args.max_tokens,
        stop=args.stop,
        top_logprobs=args.top_logprobs or 0,
        extra_body=extra,
        skip_impossible=bool(args.skip_impossible),
    )


def extra_body_of(args: argparse.Namespace) -> dict | None:
    try:
        extra = json.loads(args.extra_body) if args.extra_body else None
    except json.JSONDecodeError as err:
        raise EmulateError(f"--extra-body is not valid JSON: {err}") from None
    if extra is not None and not isinstance(extra, dict):
        raise EmulateError("--extra-body must be a JSON object, e.g. '{\"cache_prompt\": false}'")
    return extra


def _restores_credentials(stored: str | None, given: str) -> bool:
    return stored is not None and redact.MASK in stored and redact.url(given) == stored


def models_of(args: argparse.Namespace) -> list[ModelSpec]:
    """The --model flags (a sweep's are several) and a --models file's."""
    given = [args.model] if isinstance(args.model, str) else args.model or []
    models = getattr(args, "models", None)  # a sweep's only
    return [parse_model(m) for m in given] + (load_models(models) if models else [])


def run_options(args: argparse.Namespace) -> RunOptions:
    """The run's RunOptions from its flags (each command has those it takes)."""
    max_errors = getattr(args, "max_errors", None)
    return RunOptions(
        out=args.out,
        record=getattr(args, "record", None),
        replay=getattr(args, "replay", None),
        resume=args.resume,
        retry_errors=getattr(args, "retry_errors", False),
        max_errors=parse_max_errors(max_errors) if max_errors else DEFAULT_MAX_ERRORS,
        concurrency=getattr(args, "concurrency", None),
        progress=not args.no_progress,
        prices=args.prices,
    )
