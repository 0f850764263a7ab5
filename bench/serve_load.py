"""bench/serve_load.py: a load generator for `tinyai serve` (or any
OpenAI-compatible server): N concurrent streaming completions, each a
prompt of about --prompt-words words and --max-tokens generated tokens,
for each N of --concurrency. Reports, per N: aggregate generated tokens per
second (all tokens / wall time of the round; the median of --rounds rounds,
3 by default, run interleaved across the N so that a drift of the machine's
speed touches every N alike, with their range), and the p50 / p99 of time
to first token and of time per output token after the first over all its
rounds; and the ratio of each N's aggregate to N = 1's, measured in the
same run.

    python bench/serve_load.py --url http://127.0.0.1:8080/v1 \\
        [--concurrency 1,4,16,64] [--prompt-words 100] [--max-tokens 128] \\
        [--shared-prefix WORDS]

--shared-prefix W: every request starts with the same W-word system text
(prefix reuse), then its own question. One untimed request goes first,
then --settle seconds of pause (5): the rounds measure a server that has
answered before, as a running one has. Uses httpx (installed with the
openai package by scripts/setup.sh, in its venv).
"""
import argparse
import asyncio
import json
import statistics
import time

import httpx


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


async def one(client, url, model, prompt, max_tokens):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    stamps = []
    usage = None
    async with client.stream("POST", url + "/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            ev = json.loads(data)
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices", []):
                if ch.get("text"):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    stamps.append(now)
    end = time.perf_counter()
    n = usage["completion_tokens"] if usage else len(stamps)
    ttft = (first - t0) if first else end - t0
    tpot = (end - first) / (n - 1) if first and n > 1 else float("nan")
    return n, ttft, tpot


async def round_of(url, model, n, prompts, max_tokens):
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        res = await asyncio.gather(*[one(client, url, model, prompts(n, i), max_tokens)
                                     for i in range(n)])
        wall = time.perf_counter() - t0
    tokens = sum(r[0] for r in res)
    return tokens / wall, [r[1] for r in res], [r[2] for r in res if r[2] == r[2]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--prompt-words", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--shared-prefix", type=int, default=0)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after the warm-up request (background work after a load)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of every N, interleaved (1, 4, ..., 1, 4, ...); each N's "
                         "figure is the median of its rounds' aggregates")
    a = ap.parse_args()
    model = httpx.get(a.url + "/models", timeout=30).json()["data"][0]["id"]
    words = ("river mountain city garden music history science ocean forest winter "
             "summer bridge market engine planet story").split()
    prefix = " ".join(words[i % len(words)] for i in range(a.shared_prefix))
    seen = {}
    def prompts(n, k, again=0):
        # unique to its round: a later round reuses no earlier prompt's cache
        # (only the shared prefix, when asked for), a round of an N already
        # run included (its prompts say so)
        own = " ".join(words[(k * 7 + i) % len(words)] for i in range(a.prompt_words))
        tag = f" (again {again})" if again else ""
        return (prefix + "\n" if prefix else "") + f"Request {k} of {n}{tag}: " + own
    print(f"model {model}; prompt ~{a.prompt_words} words"
          f"{f' after a shared {a.shared_prefix}-word prefix' if prefix else ''}, "
          f"{a.max_tokens} generated, streaming, temperature 0")
    print(f"{'N':>4} {'agg tok/s':>10} {'x N=1':>7} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'TPOT p50':>9} {'TPOT p99':>9}")
    # one untimed request first (the server's first one pays for pages
    # touched for the first time, and with --shared-prefix it leaves the
    # prefix in a slot, as a running server would have it), then a pause
    asyncio.run(round_of(a.url, model, 1, lambda n, k: prompts(0, k), 4))
    time.sleep(a.settle)
    ns = [int(x) for x in a.concurrency.split(",")]
    got = {n: ([], [], []) for n in ns}  # per N: aggregates, TTFTs, TPOTs
    for _ in range(max(1, a.rounds)):
        for n in ns:
            again = seen.get(n, 0)
            seen[n] = again + 1
            agg, ttft, tpot = asyncio.run(round_of(a.url, model, n,
                                                   lambda n, k: prompts(n, k, again), a.max_tokens))
            got[n][0].append(agg)
            got[n][1].extend(ttft)
            got[n][2].extend(tpot)
    base = None
    for n in ns:
        aggs, ttft, tpot = got[n]
        agg = statistics.median(aggs)
        base = base or agg
        spread = f"  ({min(aggs):.1f}-{max(aggs):.1f} over {len(aggs)})" if len(aggs) > 1 else ""
        print(f"{n:>4} {agg:>10.1f} {agg / base:>6.2f}x {pct(ttft, 50) * 1e3:>7.0f}ms "
              f"{pct(ttft, 99) * 1e3:>7.0f}ms {pct(tpot, 50) * 1e3:>7.1f}ms {pct(tpot, 99) * 1e3:>7.1f}ms"
              f"{spread}", flush=True)


if __name__ == "__main__":
    main()
