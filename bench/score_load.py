"""bench/score_load.py: how fast an OpenAI-compatible server scores texts,
as evaluation harnesses ask for it (/v1/completions with echo, logprobs 1
and max_tokens 0: each prompt token's log-probability given those before
it), beside the same prompts evaluated plainly (max_tokens 1, no echo), in
one run. For each N of --concurrency, N clients each send --requests
prompts of about --prompt-words words one after the other; reports prompt
tokens per second over the round (the median of --rounds rounds, run
interleaved across N and the two kinds so that a drift of the machine's
speed touches all alike) and the scored rate as a share of the plain one.
Every prompt is unique (a digit tag first), so no prefix is reused.

    python bench/score_load.py --url http://127.0.0.1:8080/v1 \\
        [--concurrency 1,16] [--prompt-words 100] [--requests 4]

Uses httpx (installed with the openai package by scripts/setup.sh, in its
venv).
"""
import argparse
import asyncio
import statistics
import time

import httpx


async def client_run(client, url, model, bodies):
    tokens = 0
    for body in bodies:
        r = await client.post(url + "/completions", json={"model": model, **body})
        r.raise_for_status()
        out = r.json()
        tokens += out["usage"]["prompt_tokens"]
        if body.get("echo"):
            lp = out["choices"][0]["logprobs"]
            assert len(lp["token_logprobs"]) == out["usage"]["prompt_tokens"], "an entry per prompt token"
    return tokens


async def round_of(url, model, n, prompts, scored):
    extra = {"echo": True, "logprobs": 1, "max_tokens": 0} if scored else {"max_tokens": 1}
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        res = await asyncio.gather(*[client_run(client, url, model,
                                                [{"prompt": p, "temperature": 0, **extra} for p in prompts(k)])
                                     for k in range(n)])
        wall = time.perf_counter() - t0
    return sum(res) / wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--prompt-words", type=int, default=100)
    ap.add_argument("--requests", type=int, default=4, help="prompts each client sends in a round")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    model = httpx.get(a.url + "/models", timeout=30).json()["data"][0]["id"]
    words = ("river mountain city garden music history science ocean forest winter "
             "summer bridge market engine planet story").split()
    serial = [0]

    def prompts(k):
        out = []
        for j in range(a.requests):
            serial[0] += 1
            own = " ".join(words[(k * 7 + j * 3 + i) % len(words)] for i in range(a.prompt_words))
            out.append(f"{serial[0]}. {own}")
        return out

    print(f"model {model}; prompts of ~{a.prompt_words} words, {a.requests} a client a round")
    print(f"{'N':>4} {'plain tok/s':>12} {'scored tok/s':>13} {'scored/plain':>13}")
    asyncio.run(round_of(a.url, model, 1, prompts, True))  # untimed: first pages touched
    ns = [int(x) for x in a.concurrency.split(",")]
    got = {(n, s): [] for n in ns for s in (False, True)}
    for _ in range(max(1, a.rounds)):
        for n in ns:
            for scored in (False, True):
                got[(n, scored)].append(asyncio.run(round_of(a.url, model, n, prompts, scored)))
    for n in ns:
        plain, scored = statistics.median(got[(n, False)]), statistics.median(got[(n, True)])
        print(f"{n:>4} {plain:>12.1f} {scored:>13.1f} {scored / plain:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
