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

    # errors come back as the client's exceptions with the right status
    try:
        client.completions.create(model=model, prompt="x", temperature=999999)
        raise AssertionError("temperature 999999 was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400
    try:
        client.completions.create(model=model, prompt="x", n=2)
        raise AssertionError("n=2 was accepted")
    except openai.BadRequestError as e:
        assert "'n' must be 1" in str(e), str(e)
    print("errors ok")


if __name__ == "__main__":
    main()
