#!/usr/bin/env python3
"""llama.cpp's answers for Murmur's tests, made in the test setup (`./dev test`).

For each model: token ids of mixed text, and greedy continuations of three prompts (the whole
logits' argmax, ties to the lowest id, prompt in one batch, then one token at a time, not
stopping at end-of-generation tokens) with llama.cpp's five best logits at each step. Also
makes the quantised variants of a model with llama.cpp's own quantiser, and small models of a
family with random weights, written by llama.cpp's own GGUF writer (the `gguf` package).

    llama_reference.py variants SOURCE.gguf OUT_DIR TYPE...      # OUT_DIR/<stem>.<TYPE>.gguf
    llama_reference.py reference MODEL.gguf OUT.json STEPS
    llama_reference.py synthetic FAMILY VOCAB.gguf OUT.gguf      # random weights, VOCAB's tokenizer
                                                                 # (FAMILY: llama3, llama-spm, qwen3, phi3, gemma3)
    llama_reference.py split MODEL.gguf OUT_DIR COUNT            # OUT_DIR/<stem>-split-0000k-of-COUNT.gguf

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
    ("leading", "   three spaces first,\n\n\ttabs, <bos> and <start_of_turn>user\n\u00ff\ufffd\U0001d11e end"),
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


# Small models of each family with random weights. The Llama 3 one has every width a multiple
# of 256, so llama.cpp's quantiser keeps each tensor of a K-quant variant in its K type (SmolLM2's
# 576 falls back to Q5_0/Q8_0). Qwen3 and Gemma 3 have heads wider than the width over the heads
# and per-head q/k norms; Gemma 3 slides a window of 5 positions on two layers of every three,
# so the tests' prompts reach past it. Phi-3 fuses q/k/v into one tensor and the gate with the up
# projection. (It is not named "phi3": for such names llama.cpp looks up Llama 2's `</s>`, which
# this vocabulary lacks.)
FAMILIES = {
    "llama3": dict(arch="llama", dim=256, heads=4, kv_heads=2, head_dim=64, ffn=768, layers=2, rope_base=500000.0),
    "qwen3": dict(arch="qwen3", dim=256, heads=4, kv_heads=2, head_dim=96, ffn=512, layers=2, rope_base=1000000.0),
    # Llama with a SentencePiece vocabulary (Gemma's, told to add the space prefix as Llama 2's does).
    "llama-spm": dict(arch="llama", dim=64, heads=2, kv_heads=1, head_dim=32, ffn=128, layers=1, rope_base=10000.0),
    "phi3": dict(arch="phi3", dim=256, heads=4, kv_heads=2, head_dim=64, ffn=512, layers=2, rope_base=10000.0),
    "gemma3": dict(arch="gemma3", dim=256, heads=4, kv_heads=2, head_dim=128, ffn=512, layers=3, rope_base=1000000.0,
                   window=5, pattern=3),
}


def llama3_rope_factors(head_dim, base, factor=8.0, low=1.0, high=4.0, original_context=64):
    """Llama 3's `rope_freqs`, as llama.cpp's converter computes them from `rope_scaling`; the
    original context is cut to 64 so that the scaling acts within the tests' short prompts."""
    freqs = base ** -(np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = original_context / low, original_context / high
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original_context / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def synthetic(family, vocab_source, out):
    """A `family` model with random weights and `vocab_source`'s tokenizer, in F16 (F32 norms)."""
    import gguf

    if family not in FAMILIES:
        sys.exit(f"unknown family {family}; known: {', '.join(FAMILIES)}")
    c = FAMILIES[family]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)

    def make(tmp):
        reader = gguf.GGUFReader(vocab_source)
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
        d, hd, ffn = c["dim"], c["head_dim"], c["ffn"]
        qd, kv = c["heads"] * hd, c["kv_heads"] * hd
        w = gguf.GGUFWriter(tmp, c["arch"])
        w.add_name(f"Murmur synthetic {family}" if family != "phi3" else "Murmur synthetic Phi")
        w.add_context_length(4096)
        w.add_embedding_length(d)
        w.add_block_count(c["layers"])
        w.add_feed_forward_length(ffn)
        w.add_head_count(c["heads"])
        w.add_head_count_kv(c["kv_heads"])
        w.add_key_length(hd)
        w.add_value_length(hd)
        w.add_rope_dimension_count(hd)
        w.add_rope_freq_base(c["rope_base"])
        w.add_layer_norm_rms_eps(1e-5 if family == "llama3" else 1e-6)
        w.add_vocab_size(vocab)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        if "window" in c:
            w.add_sliding_window(c["window"])
            w.add_sliding_window_pattern(c["pattern"])
        for name, field in reader.fields.items():
            if not name.startswith("tokenizer.") or (family == "llama-spm" and name == "tokenizer.ggml.add_space_prefix"):
                continue
            kind = field.types[0]
            sub = field.types[1] if kind == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(name, field.contents(), kind, sub)
        if family == "llama-spm":
            w.add_add_space_prefix(True)
        # Scales that keep every part of the block in play: attention logits of spread about 2
        # (sharp enough for the rotation to matter, not so sharp that rounding flips it),
        # residual branches as large as the embedding, output logits of spread about 8.
        rng = np.random.default_rng(20261203)

        def mat(name, rows, cols, std):
            w.add_tensor(name, (rng.standard_normal((rows, cols)) * std).astype(np.float16))

        def norm(name, width=d):
            w.add_tensor(name, (1 + 0.1 * rng.standard_normal(width)).astype(np.float32))

        # Gemma scales the embedding up by the square root of the width.
        mat("token_embd.weight", vocab, d, d ** -0.5 if family == "gemma3" else 1.0)
        if family == "llama3":
            w.add_tensor("rope_freqs.weight", llama3_rope_factors(hd, c["rope_base"]))
        for i in range(c["layers"]):
            norm(f"blk.{i}.attn_norm.weight")
            if family == "phi3":
                qkv = np.concatenate([rng.standard_normal((qd + kv, d)) * 0.09, rng.standard_normal((kv, d)) * d ** -0.5])
                w.add_tensor(f"blk.{i}.attn_qkv.weight", qkv.astype(np.float16))
            else:
                mat(f"blk.{i}.attn_q.weight", qd, d, 0.09)
                mat(f"blk.{i}.attn_k.weight", kv, d, 0.09)
                mat(f"blk.{i}.attn_v.weight", kv, d, d ** -0.5)
            if family in ("qwen3", "gemma3"):
                norm(f"blk.{i}.attn_q_norm.weight", hd)
                norm(f"blk.{i}.attn_k_norm.weight", hd)
            mat(f"blk.{i}.attn_output.weight", d, qd, qd ** -0.5)
            norm(f"blk.{i}.ffn_norm.weight")
            if family == "phi3":
                mat(f"blk.{i}.ffn_up.weight", 2 * ffn, d, d ** -0.5)  # the gate's rows, then the up's
            else:
                mat(f"blk.{i}.ffn_gate.weight", ffn, d, d ** -0.5)
                mat(f"blk.{i}.ffn_up.weight", ffn, d, d ** -0.5)
            mat(f"blk.{i}.ffn_down.weight", d, ffn, ffn ** -0.5)
            if family == "gemma3":
                norm(f"blk.{i}.post_attention_norm.weight")
                norm(f"blk.{i}.post_ffw_norm.weight")
        norm("output_norm.weight")
        mat("output.weight", vocab, d, 0.5)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    write_once(out, make)


def split(source, out_dir, count):
    """`source` rewritten as a split GGUF of `count` files (`<stem>-0000k-of-0000N.gguf` in
    `out_dir`), as llama.cpp's gguf-split writes them: the metadata in the first, the tensors
    spread over all, each file naming its place (`split.no`, `split.count`, `split.tensors.count`)."""
    import gguf

    stem = os.path.basename(source)[: -len(".gguf")]
    first = os.path.join(out_dir, f"{stem}-split-00001-of-{count:05d}.gguf")
    if os.path.exists(first):
        return
    os.makedirs(out_dir, exist_ok=True)
    reader = gguf.GGUFReader(source)
    tmp = os.path.join(out_dir, f".partial-{stem}")
    os.makedirs(tmp, exist_ok=True)
    w = gguf.GGUFWriter(os.path.join(tmp, f"{stem}-split.gguf"), reader.fields["general.architecture"].contents(),
                        split_max_tensors=-(-len(reader.tensors) // count))
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        sub = field.types[1] if kind == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), kind, sub)
    for t in reader.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    names = sorted(os.listdir(tmp))
    if len(names) != count:
        sys.exit(f"the writer made {len(names)} files, not {count}")
    for n in reversed(names):  # the first last: its presence says the split is whole
        os.replace(os.path.join(tmp, n), os.path.join(out_dir, n))
    os.rmdir(tmp)


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
    elif cmd == "synthetic":
        synthetic(args[0], args[1], args[2])
    elif cmd == "split":
        split(args[0], args[1], int(args[2]))
    else:
        sys.exit(__doc__)
