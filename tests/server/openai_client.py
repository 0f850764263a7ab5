"""The OpenAI Python client (PyPI `openai`) against `tinyai serve`.

    python openai_client.py BASE_URL MODEL_ID

Every check raises on failure; prints one line per check and exits 0 when
all pass. Run by tests/server/server_test.cc with the venv setup.sh makes.
"""
import sys

import openai


def main():
    base, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)

    # models: the list shape clients depend on
    ids = [m.id for m in client.models.list().data]
    assert ids == [model], ids
    assert client.models.retrieve(model).id == model
    print("models ok")

    # chat, not streaming: text, finish reason, usage
    r = client.chat.completions.create(
        model=model, temperature=0, max_tokens=12,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is the capital of France?"}])
    text = r.choices[0].message.content
    assert r.object == "chat.completion", r.object
    assert r.choices[0].message.role == "assistant"
    assert isinstance(text, str) and text, r
    assert r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason
    u = r.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 12, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    print("chat ok:", repr(text))

    # chat, streaming: the deltas join to the same text; usage at the end
    stream = client.chat.completions.create(
        model=model, temperature=0, max_tokens=12, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is the capital of France?"}])
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            if delta.content:
                parts.append(delta.content)
            if chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == text, ("".join(parts), text)
    assert finish in ("stop", "length"), finish
    assert usage is not None and usage.completion_tokens == u.completion_tokens, usage
    print("chat stream ok")

    # completions, with a stop sequence
    c = client.completions.create(model=model, prompt="The capital of France is",
                                  temperature=0, max_tokens=16)
    full = c.choices[0].text
    assert c.object == "text_completion"
    cut = full.find(".")
    assert cut > 0, full
    s = client.completions.create(model=model, prompt="The capital of France is",
                                  temperature=0, max_tokens=16, stop=["."])
    assert s.choices[0].text == full[:cut], (s.choices[0].text, full)
    assert s.choices[0].finish_reason == "stop"
    print("completions and stop ok:", repr(full))

    # seeds: the same seed gives the same sampled text, another seed (most
    # likely) another one; at least the same one twice
    def sampled(seed):
        return client.completions.create(model=model, prompt="Once upon a time",
                                         temperature=1.0, top_p=0.95, max_tokens=16,
                                         seed=seed).choices[0].text
    a, b = sampled(7), sampled(7)
    assert a == b, (a, b)
    print("seed ok")

    # logprobs, chat: one entry per token, the tokens join to the text, the
    # chosen token is the most likely at temperature 0, alternatives sorted
    r = client.chat.completions.create(
        model=model, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens or (
        r.choices[0].finish_reason == "stop" and len(content) == r.usage.completion_tokens - 1), r
    assert "".join(e.token for e in content) == r.choices[0].message.content, r
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3, e
        assert e.top_logprobs[0].token == e.token and abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6, e
        lps = [t.logprob for t in e.top_logprobs]
        assert lps == sorted(lps, reverse=True), lps
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token, e
    # streamed: the same entries, spread over the chunks
    stream = client.chat.completions.create(
        model=model, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3, stream=True,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    streamed = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].logprobs:
            streamed += chunk.choices[0].logprobs.content
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]
    print("chat logprobs ok:", [(e.token, round(e.logprob, 3)) for e in content[:3]])

    # logprobs, completions: tokens, token_logprobs, top_logprobs, text_offset
    c = client.completions.create(model=model, prompt="The capital of France is",
                                  temperature=0, max_tokens=6, logprobs=2)
    lp = c.choices[0].logprobs
    assert "".join(lp.tokens) == c.choices[0].text, (lp.tokens, c.choices[0].text)
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset[0] == 0
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0 and len(top) == 2 and max(top.values()) == l and top[tok] == l, (tok, l, top)
    print("completion logprobs ok")

    # a prompt scored, as evaluation harnesses ask for it (echo, logprobs,
    # one token generated, the prompt as token ids): an entry per prompt
    # token (the first without a log-probability) and then the answer's
    ids = client.completions.create(model=model, prompt="The capital of France is", max_tokens=0,
                                    logprobs=0, echo=True).choices[0].logprobs.tokens
    assert len(ids) >= 4, ids
    c = client.completions.create(model=model, prompt="The capital of France is Paris", temperature=0,
                                  max_tokens=1, logprobs=1, echo=True)
    lp = c.choices[0].logprobs
    assert c.choices[0].text.startswith("The capital of France is Paris"), c.choices[0].text
    assert "".join(lp.tokens) == c.choices[0].text, (lp.tokens, c.choices[0].text)
    assert c.usage.prompt_tokens == len(lp.tokens) - 1 and c.usage.completion_tokens == 1, c.usage
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, lp
    assert all(l <= 0 for l in lp.token_logprobs[1:]), lp.token_logprobs
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0, lp.text_offset
    print("echo ok:", [round(l, 3) for l in lp.token_logprobs[1:]])

    # content as text parts and the developer role, as newer clients send
    # them: the same answer as the plain form
    def chat(messages):
        return client.chat.completions.create(
            model=model, temperature=0, max_tokens=8, messages=messages).choices[0].message.content
    plain = chat([{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is the capital of France?"}])
    assert chat([{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                  {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]) == plain
    print("content parts ok")

    # n choices, each under its index, with its own finish reason
    r = client.chat.completions.create(
        model=model, temperature=1.0, max_tokens=6, n=2, seed=3,
        messages=[{"role": "user", "content": "Tell me a story."}])
    assert [c.index for c in r.choices] == [0, 1], r
    assert all(c.message.content and c.finish_reason in ("stop", "length") for c in r.choices), r
    print("n choices ok")

    # errors come back as the client's exceptions with the right status
    try:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        raise AssertionError("tools were accepted")
    except openai.BadRequestError as e:
        assert "'tools' is not supported" in str(e), str(e)
    try:
        client.completions.create(model=model, prompt="x", temperature=999999)
        raise AssertionError("temperature 999999 was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400
    try:
        client.completions.create(model=model, prompt="x", n=17)
        raise AssertionError("n=17 was accepted")
    except openai.BadRequestError as e:
        assert "'n' must be a whole number" in str(e), str(e)
    try:
        client.chat.completions.create(model=model, top_logprobs=3,
                                       messages=[{"role": "user", "content": "x"}])
        raise AssertionError("top_logprobs without logprobs was accepted")
    except openai.BadRequestError as e:
        assert "needs 'logprobs'" in str(e), str(e)
    try:
        client.completions.create(model=model, prompt="x", logprobs=21)
        raise AssertionError("logprobs 21 was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400
    print("errors ok")


if __name__ == "__main__":
    main()
