"""A bounded load test: 32 concurrent streaming clients, no errors, no mixed-up outputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai

from .conftest import API_KEY

CLIENTS, REQUESTS = 32, 64


def test_concurrent_streams_are_not_mixed_up(server, served_models):
    model = served_models["chat"]
    prompts = [f"Customer {i} asks about order {1000 + i}" for i in range(REQUESTS)]
    expected = [
        model.chat([{"role": "user", "content": p}], max_new_tokens=16, temperature=0.9, seed=i).text
        for i, p in enumerate(prompts)
    ]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)

    def one(i: int) -> str:
        stream = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": prompts[i]}],
            max_tokens=16,
            temperature=0.9,
            seed=i,
            stream=True,
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    with ThreadPoolExecutor(CLIENTS) as pool:
        got = list(pool.map(one, range(REQUESTS)))
    assert got == expected
