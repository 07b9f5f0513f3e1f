"""Karpathy's "baby GPT": a tiny transformer trained on one short sequence, read as the
finite-state Markov chain it is (the markov probe's third truth).

With a vocabulary of V symbols and a context of C, the model maps each of the V**C
states (the last C symbols) to a distribution over the next symbol, so it *is* a
Markov chain of order C. His example: V=2, C=3, the sequence 111101111011110, its
12 windows of 3 as the training examples, n_layer 4, n_head 4, n_embd 16, no bias in
the linear layers (LayerNorm keeps its own), weight tying, nanoGPT's initialisation,
AdamW (lr 1e-3, weight decay 0.1), 50 full-batch steps, torch.manual_seed(1337):
12,656 parameters. It learns 101 -> 1 at about 79% (the data says 100%) and gives
the states it never saw sharp rows (000 -> 1 at about 73%).

The model is written out here, module by module in his order, because the order in
which modules are built decides what the seed draws. Training runs on the CPU in
one thread with deterministic algorithms, so the same sequence gives the same rows
on every run; rows are cached beside the sandbox's (EMULATE_CACHE) by sequence,
settings and torch version.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from itertools import product
from typing import cast

SEED = 1337
# Part of the cache key: bump it when the model or its training changes.
VERSION = 1


@dataclass(frozen=True)
class Settings:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 16
    steps: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = SEED


def states(vocab: int, context: int) -> list[tuple[int, ...]]:
    """Every state, in lexicographic order: (0, 0, 0), (0, 0, 1), ..."""
    return list(product(range(vocab), repeat=context))


def _attention_and_mlp(context: int, s: Settings):  # -> (type, type)
    """The classes of a block's two halves: causal self-attention and the MLP."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(s.n_embd, 3 * s.n_embd, bias=False)
            self.c_proj = nn.Linear(s.n_embd, s.n_embd, bias=False)
            mask = torch.tril(torch.ones(context, context)).view(1, 1, context, context)
            self.register_buffer("mask", mask)

        def forward(self, x):
            b, t, c = x.size()
            q, k, v = self.c_attn(x).split(s.n_embd, dim=2)
            q, k, v = (z.view(b, t, s.n_head, c // s.n_head).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = nn.Linear(s.n_embd, 4 * s.n_embd, bias=False)
            self.c_proj = nn.Linear(4 * s.n_embd, s.n_embd, bias=False)
            self.nonlin = nn.GELU()

        def forward(self, x):
            return self.c_proj(self.nonlin(self.c_fc(x)))

    return SelfAttention, MLP


def _model(vocab: int, context: int, s: Settings):  # -> torch.nn.Module
    import torch
    from torch import nn

    SelfAttention, MLP = _attention_and_mlp(context, s)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(s.n_embd)
            self.attn = SelfAttention()
            self.ln_2 = nn.LayerNorm(s.n_embd)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.ModuleDict(
                dict(
                    wte=nn.Embedding(vocab, s.n_embd),
                    wpe=nn.Embedding(context, s.n_embd),
                    h=nn.ModuleList([Block() for _ in range(s.n_layer)]),
                    ln_f=nn.LayerNorm(s.n_embd),
                )
            )
            self.lm_head = nn.Linear(s.n_embd, vocab, bias=False)
            wte = cast(nn.Embedding, self.transformer["wte"])
            wte.weight = self.lm_head.weight  # weight tying
            self.apply(self._init_weights)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * s.n_layer))

        @staticmethod
        def _init_weights(module) -> None:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx):
            pos = torch.arange(idx.size(1), dtype=torch.long).unsqueeze(0)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            # Only the last position's logits: the next symbol after the state.
            return self.lm_head(self.transformer.ln_f(x[:, -1, :]))

    return GPT()


def parameters(vocab: int = 2, context: int = 3, settings: Settings = Settings()) -> int:
    """The model's parameter count (12,656 for his example)."""
    import torch

    torch.manual_seed(settings.seed)
    return sum(p.numel() for p in _model(vocab, context, settings).parameters())


def train_rows(
    sequence: list[int], vocab: int, context: int, settings: Settings = Settings()
) -> dict[tuple[int, ...], list[float]]:
    """Train the baby GPT on `sequence` (every window of `context` -> the symbol after
    it) and read off its next-symbol distribution for every state."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        windows = range(len(sequence) - context)
        x = torch.tensor([sequence[i : i + context] for i in windows], dtype=torch.long)
        y = torch.tensor([sequence[i + context] for i in windows], dtype=torch.long)
        torch.manual_seed(settings.seed)
        gpt = _model(vocab, context, settings)
        opt = torch.optim.AdamW(
            gpt.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        for _ in range(settings.steps):
            loss = F.cross_entropy(gpt(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
        every = states(vocab, context)
        with torch.no_grad():
            probs = F.softmax(gpt(torch.tensor(every, dtype=torch.long)), dim=-1)
        return {s: [float(p) for p in row] for s, row in zip(every, probs.tolist(), strict=True)}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def cached_rows(
    sequence: list[int], vocab: int, context: int, settings: Settings = Settings()
) -> dict[tuple[int, ...], list[float]]:
    """train_rows, from the on-disk cache where it can (`EMULATE_CACHE=` off)."""
    import torch

    from emulate.sandbox import cache_dir

    key = hashlib.sha256(
        json.dumps(
            [VERSION, sequence, vocab, context, asdict(settings), torch.__version__]
        ).encode()
    ).hexdigest()
    off = os.environ.get("EMULATE_CACHE") == ""
    path = cache_dir().parent / "babygpt" / f"{key}.json"
    if not off:
        try:
            stored = json.loads(path.read_text())
            return {tuple(s): row for s, row in stored}
        except (OSError, ValueError, TypeError):
            pass
    rows = train_rows(sequence, vocab, context, settings)
    if not off:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([[list(s), row] for s, row in rows.items()]))
        os.replace(tmp, path)
    return rows
