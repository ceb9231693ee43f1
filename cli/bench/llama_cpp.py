"""llama.cpp's prefill and decode speed on a GGUF, measured the way `murmur bench` measures Murmur.

Usage: python llama_cpp.py MODEL THREADS PROMPT_TOKENS DECODE_TOKENS  -> one JSON line.
Needs the llama-cpp-python package (installed by `./dev bench`, never by the app).
"""
import json
import sys
import time

from llama_cpp import Llama

model, threads, n_prompt, n_decode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=1024, n_batch=512, verbose=False)
prompt = [504] * n_prompt  # the token does not change the cost
best_prefill, best_decode = 0.0, 0.0
for _ in range(3):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([30])
    t2 = time.perf_counter()
    best_prefill = max(best_prefill, n_prompt / (t1 - t0))
    best_decode = max(best_decode, n_decode / (t2 - t1))
print(json.dumps({"prefill_tps": best_prefill, "decode_tps": best_decode}))
