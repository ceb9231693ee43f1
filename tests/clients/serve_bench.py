"""The server's overhead, side by side in one run (`./dev bench --serve`): time to first token and
decode speed of the same greedy request in process (`murmur ask --json`) and through
`murmur serve` with the `openai` package, then requests per second of 4 concurrent clients.

    python serve_bench.py MURMUR_BIN MODEL [RUNS]
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
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
QUESTION = "Explain in a few sentences why the sky is blue."
TOKENS = 64
# Each run's own system prompt: nothing is reused from the run before, in either case.
SYSTEM = "Run {}. You are Murmur, a friendly voice assistant running on this computer. Answer briefly."


def in_process(run):
    out = subprocess.run([MURMUR, "ask", "--model", MODEL, "--temp", "0", "--max-tokens", str(TOKENS), "--json",
                          "--system", SYSTEM.format(run), QUESTION], check=True, capture_output=True, text=True).stdout
    v = json.loads(out)
    return v["time_to_first_token_ms"], v["decode_tokens_per_s"]


def served(client, run):
    start = time.monotonic()
    first, stamps = None, []
    stream = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=TOKENS, stream=True,
        messages=[{"role": "system", "content": SYSTEM.format(run)}, {"role": "user", "content": QUESTION}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.monotonic()
            first = first or now
            stamps.append(now)
    tps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return (first - start) * 1e3, tps


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
    served(client, -1)  # warm
    local = [in_process(i) for i in range(RUNS)]
    remote = [served(client, i) for i in range(RUNS)]
    rps = concurrent(client)
finally:
    server.terminate()

med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
print(f"{MODEL}, median of {RUNS}, {TOKENS} tokens greedy")
print(f"  in process      first token {med(local, 0):7.1f} ms   decode {med(local, 1):6.1f} tok/s")
print(f"  murmur serve    first token {med(remote, 0):7.1f} ms   decode {med(remote, 1):6.1f} tok/s")
print(f"  ratio (serve/in process): first token {med(remote, 0) / med(local, 0):.2f}x, "
      f"decode {med(remote, 1) / med(local, 1):.2f}x")
print(f"  4 concurrent clients, 8-token replies: {rps:.1f} requests/s")
