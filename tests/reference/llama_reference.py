#!/usr/bin/env python3
"""llama.cpp's answers for Murmur's tests, made in the test setup (`./dev test`).

For each model: token ids of mixed text, and greedy continuations of three prompts (the whole
logits' argmax, ties to the lowest id, prompt in one batch, then one token at a time, not
stopping at end-of-generation tokens) with llama.cpp's five best logits at each step. Also
makes the quantised variants of a model with llama.cpp's own quantiser.

    llama_reference.py variants SOURCE.gguf OUT_DIR TYPE...      # OUT_DIR/<stem>.<TYPE>.gguf
    llama_reference.py reference MODEL.gguf OUT.json STEPS

Outputs are written once: an existing file is left alone (the setup re-runs cheaply).
"""
import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp

PROMPTS = [
    ("raw", "The capital of France is"),
    ("chat", "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
]

TOKENIZE = [
    ("code", "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n}\n"),
    ("cjk", "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다."),
    ("emoji", "I ❤️ 🦀 and 👩‍👩‍👧‍👦 🎉🎉"),
    ("numbers", "3.14159 1,234,567 2026-12-02 0x1F 1e-5 123456789012"),
    ("whitespace", "a  b   c\t\td\n\n\n  e \r\n f      "),
    ("special", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|endoftext|>"),
]

# ggml's file-type numbers for llama_model_quantize.
FTYPES = {
    "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_M": 12,
    "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30,
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_once(path, make):
    if os.path.exists(path):
        return
    tmp = path + ".partial"
    make(tmp)
    os.replace(tmp, path)


def variants(source, out_dir, types):
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.basename(source).rsplit(".", 2)[0]
    for t in types:
        def make(tmp, t=t):
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FTYPES[t]
            params.allow_requantize = True
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(source.encode(), tmp.encode(), params)
            if rc != 0:
                sys.exit(f"llama_model_quantize to {t} failed ({rc})")
        write_once(os.path.join(out_dir, f"{stem}.{t}.gguf"), make)


def last_logits(llm):
    """The logits after the last token evaluated (llama.cpp keeps only those)."""
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32)


def reference(model, out, steps):
    def make(tmp):
        llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=2, verbose=False)
        doc = {
            "about": f"llama.cpp (llama-cpp-python {llama_cpp.__version__}, CPU) on {os.path.basename(model)}: "
            "token ids with special tokens parsed; greedy = argmax of the whole logits, prompt in one batch, "
            "then single-token steps, not stopping at end-of-generation tokens.",
            "model_sha256": sha256(model),
            "tokenization": [],
            "greedy": [],
        }
        for name, text in TOKENIZE:
            ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            doc["tokenization"].append({"name": name, "text": text, "token_ids": ids})
        for name, prompt in PROMPTS:
            ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
            llm.reset()
            llm.eval(ids)
            greedy, top5 = [], []
            for _ in range(steps):
                logits = last_logits(llm)
                order = np.lexsort((np.arange(len(logits)), -logits))[:5]
                top5.append([[int(i), float(logits[i])] for i in order])
                greedy.append(int(order[0]))
                llm.eval([int(order[0])])
            doc["greedy"].append({"name": name, "prompt": prompt, "prompt_ids": ids, "greedy_ids": greedy, "top5_logits_per_step": top5})
        with open(tmp, "w") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
    write_once(out, make)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "variants":
        variants(args[0], args[1], args[2:])
    elif cmd == "reference":
        reference(args[0], args[1], int(args[2]))
    else:
        sys.exit(__doc__)
