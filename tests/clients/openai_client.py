"""Drives an OpenAI-compatible server with the real `openai` package (and plain HTTP for the
error cases), for tests/tests/openai_server.rs. Each case prints one JSON object; the Rust test
asserts on it.

    python openai_client.py BASE_URL API_KEY MODEL CASE
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request

import jsonschema
import openai

BASE, KEY, MODEL, CASE = sys.argv[1:5]
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=120)
FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]


def chat(messages, **kw):
    r = client.chat.completions.create(model=MODEL, messages=messages, **kw)
    return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens


def models():
    return {"ids": [m.id for m in client.models.list().data]}


def paris():
    text, finish, tokens = chat(FRANCE, temperature=0, max_tokens=40)
    return {"text": text, "finish": finish, "tokens": tokens}


def streaming():
    plain, _, _ = chat(FRANCE, temperature=0, max_tokens=40)
    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(
        model=MODEL, messages=FRANCE, temperature=0, max_tokens=40, stream=True,
        stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            finish = c.finish_reason or finish
    return {"plain": plain, "streamed": "".join(pieces), "chunks": len(pieces), "usage": usage, "finish": finish}


def seed():
    story = [{"role": "user", "content": "Suggest a name for a pet cat, and say why in one sentence."}]
    runs = [chat(story, temperature=1.0, seed=s, max_tokens=24)[0] for s in (7, 7, 8)]
    return {"runs": runs}


def stop():
    count = [{"role": "user", "content": "Count from 1 to 10, separated by commas, nothing else."}]
    free, _, _ = chat(count, temperature=0, max_tokens=60)
    stopped, finish, _ = chat(count, temperature=0, max_tokens=60, stop=["5"])
    return {"free": free, "stopped": stopped, "finish": finish}


SCHEMAS = [
    ("a person named Ada Lovelace, born 1815",
     {"type": "object", "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
      "required": ["name", "born"], "additionalProperties": False}),
    ("whether the sky is blue",
     {"type": "object", "properties": {"answer": {"type": "boolean"}}, "required": ["answer"]}),
    ("three primary colours",
     {"type": "object", "properties": {"colours": {"type": "array", "items": {"type": "string"},
                                                   "minItems": 3, "maxItems": 3}},
      "required": ["colours"]}),
    ("the weather today, as sunny, rainy or cloudy",
     {"type": "object", "properties": {"weather": {"enum": ["sunny", "rainy", "cloudy"]}},
      "required": ["weather"]}),
    ("the price of a coffee in euros",
     {"type": "object", "properties": {"price": {"type": "number"}, "currency": {"const": "EUR"}},
      "required": ["price", "currency"]}),
    ("the book The Hobbit: its title, and its subtitle if it has one",
     {"type": "object", "properties": {"title": {"type": "string", "maxLength": 60},
                                       "subtitle": {"type": "string", "maxLength": 60}},
      "required": ["title"], "additionalProperties": False}),
    ("a point with x and y coordinates, nested under 'point'",
     {"type": "object", "properties": {"point": {"type": "object", "properties": {
         "x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
      "required": ["point"]}),
    ("a list of two cities with their countries",
     {"type": "array", "items": {"type": "object", "properties": {
         "city": {"type": "string"}, "country": {"type": "string"}}, "required": ["city", "country"]},
      "minItems": 2, "maxItems": 2}),
    ("the task 'buy milk', which has no due date",
     {"type": "object", "properties": {"task": {"type": "string"}, "due": {"type": "null"}},
      "required": ["task", "due"]}),
    ("a rating from 1 to 5 of a film, with the film's name",
     {"type": "object", "properties": {"film": {"type": "string", "maxLength": 40},
                                       "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
      "required": ["film", "stars"]}),
]


def schemas():
    results = []
    for what, schema in SCHEMAS:
        text, finish, _ = chat(
            [{"role": "user", "content": f"Reply with JSON describing {what}."}], temperature=0, max_tokens=120,
            response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}})
        try:
            jsonschema.validate(json.loads(text), schema)
            error = None
        except Exception as e:  # noqa: BLE001 - reported to the Rust test
            error = f"{type(e).__name__}: {e}"
        results.append({"what": what, "text": text, "finish": finish, "error": error})
    return {"results": results}


def json_object():
    text, _, _ = chat([{"role": "user", "content": "Describe a dog as JSON."}], temperature=0, max_tokens=80,
                      response_format={"type": "json_object"})
    return {"text": text, "parsed": isinstance(json.loads(text), dict)}


def quick():
    start = time.monotonic()
    chat([{"role": "user", "content": "Hi"}], temperature=0, max_tokens=1)
    return time.monotonic() - start


def disconnect():
    idle = min(quick() for _ in range(2))
    essay = [{"role": "user", "content": "Write a very long essay about the history of Europe."}]
    stream = client.chat.completions.create(model=MODEL, messages=essay, temperature=0, max_tokens=2000,
                                            stream=True)
    seen = 0
    for chunk in stream:
        seen += 1
        if seen == 5:
            break
    stream.close()
    after = quick()
    return {"idle": idle, "after": after, "seen": seen}


def wrong_key():
    bad = openai.OpenAI(base_url=BASE, api_key="not-the-key", max_retries=0)
    try:
        bad.models.list()
        return {"status": 200}
    except openai.AuthenticationError as e:
        return {"status": e.status_code, "body": e.body}


def concurrent():
    capitals = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin"}
    answers = {}

    def ask(country):
        answers[country] = chat([{"role": "user", "content": f"What is the capital of {country}? One sentence."}],
                                temperature=0, max_tokens=30)[0]

    threads = [threading.Thread(target=ask, args=(c,)) for c in capitals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"answers": answers, "capitals": capitals}


def conversation():
    """Two requests of one conversation: the second reuses the first one's cached prefix."""
    first = [{"role": "user", "content": "What is the capital of Italy? Answer in one short sentence."}]
    r1 = client.chat.completions.create(model=MODEL, messages=first, temperature=0, max_tokens=40)
    reply = r1.choices[0].message.content
    second = first + [{"role": "assistant", "content": reply},
                      {"role": "user", "content": "And what river runs through it? One short sentence."}]
    r2 = client.chat.completions.create(model=MODEL, messages=second, temperature=0, max_tokens=40)
    return {"first": reply, "first_prompt": r1.usage.prompt_tokens, "second": r2.choices[0].message.content,
            "second_prompt": r2.usage.prompt_tokens, "cached": r2.usage.prompt_tokens_details.cached_tokens}


CORS_ORIGIN = "http://localhost:3000"


def cors():
    """A browser's preflight from the allowed origin and from another one."""
    def preflight(origin):
        request = urllib.request.Request(BASE + "/chat/completions", method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        with urllib.request.urlopen(request) as r:
            return r.headers.get("Access-Control-Allow-Origin")
    return {"allowed": preflight(CORS_ORIGIN), "other": preflight("http://evil.example")}


def http(body, key=KEY, path="/chat/completions"):
    request = urllib.request.Request(BASE + path, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request) as r:
            return {"status": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


def errors():
    hi = [{"role": "user", "content": "Hi"}]
    return {
        "bad_json": http('{"model": '),
        "unknown_model": http(json.dumps({"model": "gpt-9", "messages": hi})),
        "unsupported": http(json.dumps({"model": MODEL, "messages": hi, "n": 3})),
        "too_long": http(json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "word " * 40000}]})),
        "bad_schema": http(json.dumps({"model": MODEL, "messages": hi, "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}})),
        "no_key": http(json.dumps({"model": MODEL, "messages": hi}), key="wrong"),
        "completion": http(json.dumps({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 8,
                                       "temperature": 0}), path="/completions"),
    }


print(json.dumps(globals()[CASE]()))
