"""The server's overhead, side by side in one run (`./dev bench --serve`): time to first token and
decode speed of the same greedy request in process (`murmur chat --json`) and through
`murmur serve` with the `openai` package, then requests per second of 4 concurrent clients.

    python serve_bench.py MURMUR_BIN MODEL
"""

import json
import re
import statistics
import subprocess
import sys
import threading
import time

import openai

MURMUR, MODEL = sys.argv[1:3]
QUESTIONS = ["Explain in a few sentences why the sky is blue.", "Explain in a few sentences how a rainbow forms.",
             "Explain in a few sentences why the sea is salty.", "Explain in a few sentences how bees make honey.",
             "Explain in a few sentences why leaves change colour."]
TOKENS = 64
# Murmur's default persona in both cases: each engine reuses its cached prefix the same way.
SYSTEM = "You are Murmur, a friendly voice assistant running on this computer. Answer in one or two short sentences."


def rates(start, stamps):
    tps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return (stamps[0] - start) * 1e3, tps


def in_process():
    """The same questions through `murmur chat --json` (one warm assistant), timed per token line."""
    chat = subprocess.Popen([MURMUR, "chat", "--model", MODEL, "--temp", "0", "--max-tokens", str(TOKENS), "--json",
                             "--system", SYSTEM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    results = []
    for i, question in enumerate([QUESTIONS[-1]] + QUESTIONS):
        start, stamps = time.monotonic(), []
        chat.stdin.write(f"/new\n{question}\n")
        chat.stdin.flush()
        for line in chat.stdout:
            v = json.loads(line)
            if "token" in v:
                if v["token"]:
                    stamps.append(time.monotonic())
            elif "answer" in v:
                break
        if i > 0:  # the first one warms up
            results.append(rates(start, stamps))
    chat.stdin.close()
    chat.wait()
    return results


def served(client, question):
    start, stamps = time.monotonic(), []
    stream = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=TOKENS, stream=True,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.monotonic())
    return rates(start, stamps)


def concurrent(client, n=4, rounds=3):
    def one():
        client.chat.completions.create(model=MODEL, temperature=0, max_tokens=8,
                                       messages=[{"role": "user", "content": "Say hello."}])
    start = time.monotonic()
    for _ in range(rounds):
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return n * rounds / (time.monotonic() - start)


server = subprocess.Popen([MURMUR, "serve", "--port", "0", "--model", MODEL], stderr=subprocess.PIPE, text=True)
for line in server.stderr:
    if m := re.search(r"http://\S+/v1", line):
        base = m.group(0)
        break
client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
try:
    served(client, QUESTIONS[-1])  # warm
    remote = [served(client, q) for q in QUESTIONS]
    local = in_process()
    rps = concurrent(client)
finally:
    server.terminate()

med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
print(f"{MODEL}, median of {len(QUESTIONS)} questions, up to {TOKENS} tokens greedy")
print(f"  in process      first token {med(local, 0):7.1f} ms   decode {med(local, 1):6.1f} tok/s")
print(f"  murmur serve    first token {med(remote, 0):7.1f} ms   decode {med(remote, 1):6.1f} tok/s")
print(f"  ratio (serve/in process): first token {med(remote, 0) / med(local, 0):.2f}x, "
      f"decode {med(remote, 1) / med(local, 1):.2f}x")
print(f"  4 concurrent clients, 8-token replies: {rps:.1f} requests/s")
