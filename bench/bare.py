"""The reference client: a bare AsyncOpenAI + semaphore loop, nothing else.

    python bench/bare.py BASE_URL [--cases 2000] [--concurrency 64]

Sends conv-like chat prompts (fresh numbers each) and counts the answers. This is
what a researcher would write by hand; bench/scale.py times it as a whole process.
"""

import argparse
import asyncio
import random

import openai


async def main(base_url: str, cases: int, concurrency: int) -> None:
    client = openai.AsyncOpenAI(api_key="not-needed", base_url=base_url)
    gate = asyncio.Semaphore(concurrency)
    rng = random.Random(0)

    async def one(i: int) -> str:
        xs = [rng.randrange(10) for _ in range(5)]
        ks = [rng.randrange(10) for _ in range(2)]
        messages = [
            {"role": "system", "content": "You compute exactly. Reply with a JSON array."},
            {"role": "user", "content": f"Input: {xs}\nKernel: {ks}"},
        ]
        async with gate:
            r = await client.chat.completions.create(
                model="bench", messages=messages, temperature=0, max_tokens=64, seed=i
            )
        return r.choices[0].message.content or ""

    answers = await asyncio.gather(*(one(i) for i in range(cases)))
    await client.close()
    print(f"{len(answers)} answers")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    asyncio.run(main(a.base_url, a.cases, a.concurrency))
