#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid inputs from which
libFuzzer mutates. Run from fuzz/ with the default models fetched (`murmur models fetch`)."""
import os, struct, wave, io, json, re, sys

MODELS = os.environ.get("MURMUR_MODELS_DIR", os.path.expanduser("~/.cache/murmur/models"))
SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(v):
    if isinstance(v, bool):
        return struct.pack("<I?", 7, v)
    if isinstance(v, int):
        return struct.pack("<Ii", 5, v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + gguf_string(v)
    (kind, items) = v
    body = b"".join(gguf_value(i)[4:] for i in items)
    code = {"str": 8, "i32": 5, "f32": 6}[kind]
    return struct.pack("<II", 9, code) + struct.pack("<Q", len(items)) + body


def gguf(meta, tensors):
    """A GGUF v3 file; tensors are (name, dims, ggml type, bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for k, v in meta.items():
        out += gguf_string(k) + gguf_value(v)
    offset, data = 0, b""
    for name, dims, ty, raw in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ty, offset)
        pad = (-len(raw)) % 32
        data += raw + b"\0" * pad
        offset += len(raw) + pad
    out += b"\0" * ((-len(out)) % 32)
    return out + data


def real_chat_template():
    with open(os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb") as f:
        head = f.read(4 << 20)
    at = head.index(b"tokenizer.chat_template") + len(b"tokenizer.chat_template") + 4
    (n,) = struct.unpack_from("<Q", head, at)
    return head[at + 8 : at + 8 + n].decode()


def byte_level_chars():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def llama_gguf(tokenizer_meta, n_vocab):
    dim, ffn = 32, 64
    f32 = lambda n: struct.pack(f"<{n}f", *([0.01] * n))
    q8 = lambda rows, cols: (struct.pack("<e", 0.01) + bytes(range(32))) * (rows * cols // 32)
    tensors = [("token_embd.weight", [dim, n_vocab], 8, q8(n_vocab, dim)), ("output_norm.weight", [dim], 0, f32(dim))]
    for name, dims in [("attn_q", [dim, dim]), ("attn_k", [dim, dim // 2]), ("attn_v", [dim, dim // 2]), ("attn_output", [dim, dim]),
                       ("ffn_gate", [dim, ffn]), ("ffn_up", [dim, ffn]), ("ffn_down", [ffn, dim])]:
        tensors.append((f"blk.0.{name}.weight", dims, 8, q8(dims[1], dims[0])))
    tensors += [("blk.0.attn_norm.weight", [dim], 0, f32(dim)), ("blk.0.ffn_norm.weight", [dim], 0, f32(dim))]
    meta = {
        "general.architecture": "llama", "general.name": "seed", "llama.block_count": 1,
        "llama.context_length": 512, "llama.embedding_length": dim, "llama.feed_forward_length": ffn,
        "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
        "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.freq_base": 10000.0,
    }
    meta.update(tokenizer_meta)
    return gguf(meta, tensors)


def seeds_gguf():
    chars = byte_level_chars()
    tokens = chars + ["He", "ll", "Hell", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(chars) + [1, 1, 1, 3, 3]
    gpt2 = {
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": ("str", tokens), "tokenizer.ggml.token_type": ("i32", types),
        "tokenizer.ggml.merges": ("str", ["H e", "l l", "He ll"]),
        "tokenizer.ggml.bos_token_id": len(tokens) - 2, "tokenizer.ggml.eos_token_id": len(tokens) - 1,
        "tokenizer.chat_template": real_chat_template(),
    }
    put("gguf", "llama-gpt2-q8", llama_gguf(gpt2, len(tokens)))
    spm_tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581", "\u2581H", "ello"]
    spm = {
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ("str", spm_tokens),
        "tokenizer.ggml.scores": ("f32", [0.0] * 259 + [-1.0, -2.0, -3.0]),
        "tokenizer.ggml.token_type": ("i32", [2, 3, 3] + [6] * 256 + [1, 1, 1]),
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
    }
    put("gguf", "llama-spm-q8", llama_gguf(spm, len(spm_tokens)))


def wav(rate, channels, width, frames, float32=False):
    if float32:
        data = struct.pack(f"<{frames * channels}f", *[((i % 50) - 25) / 25 for i in range(frames * channels)])
        fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
        return b"RIFF" + struct.pack("<I", len(body)) + body
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes((i * 37) % 256 for i in range(frames * channels * width)))
    return buf.getvalue()


def seeds_wav():
    with open(os.path.join(SHARED, "audio", "jfk.wav"), "rb") as f:
        put("wav", "jfk-head-16k-s16-mono", f.read(44 + 6400))
    put("wav", "44k1-u8-stereo", wav(44100, 2, 1, 400))
    put("wav", "48k-s24-mono", wav(48000, 1, 3, 300))
    put("wav", "22k05-f32-stereo", wav(22050, 2, 4, 200, float32=True))


def seeds_whisper():
    with open(os.path.join(MODELS, "whisper-tiny.en.ggml.bin"), "rb") as f:
        put("whisper_model", "ggml-head", b"\0" + f.read(16 << 10))
    with open(os.path.join(MODELS, "whisper-tiny.en-ct2", "model.bin"), "rb") as f:
        put("whisper_model", "ct2-head", b"\1" + f.read(16 << 10))
    vocab = {"model": {"vocab": {"a": 0, "\u0120b": 1, "<|endoftext|>": 2}}, "added_tokens": [{"id": 2, "content": "<|endoftext|>"}]}
    put("whisper_model", "tokenizer", b"\2" + json.dumps(vocab).encode())


def seeds_template():
    chat = "system:You are terse.\nuser:Hi\nassistant:Hello!\nuser:What is 2+2?"
    put("chat_template", "smollm2", (real_chat_template() + "\0" + chat).encode())
    llama2 = ("{% if messages[0]['role'] == 'system' %}{% set s = messages[0]['content'] %}{% endif %}"
              "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
              "{{ raise_exception('roles must alternate') }}{% endif %}"
              "{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'].strip() + ' [/INST]' }}"
              "{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
    put("chat_template", "llama2", (llama2 + "\0" + "user:Hi\nassistant:Hello\nuser:Bye").encode())


if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    seeds_gguf(); seeds_wav(); seeds_whisper(); seeds_template()
