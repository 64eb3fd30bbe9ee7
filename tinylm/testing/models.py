"""Tiny random models of every family tinylm describes, built with `transformers`, for tests.

    folder = build_model("qwen3", tmp_path / "qwen3")      # config.json, model.safetensors, tokenizer ...
    tinylm.load(folder, backend="torch")

Each variant is a `transformers` config class and its keyword arguments, small enough that a model
builds in well under a second (2 layers, hidden 32-64). Weights are drawn with a fixed seed and a
spread large enough that logits are not near-ties; norm weights and biases are random too, so
those code paths are exercised. `transformers` and `torch` are imported inside `build_model` only:
they are test dependencies, never runtime ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .tokenizers import BERT_SPECIAL_TOKENS, byte_level_bpe, sentencepiece_bpe, wordpiece

__all__ = [
    "VARIANTS",
    "DECODER_VARIANTS",
    "ENCODER_VARIANTS",
    "build_model",
    "write_decoder_tokenizer",
    "write_encoder_tokenizer",
    "train_tiny_decoder",
    "CHATML_TEMPLATE",
]

_SMALL = {"num_hidden_layers": 2, "max_position_embeddings": 256}
_LLAMA = {**_SMALL, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "rms_norm_eps": 1e-5}

#: name -> {"config": transformers config class name, "kwargs": its keyword arguments}.
#: vocab_size and the special token ids are filled in from the tokenizer by `build_model`.
VARIANTS: dict[str, dict[str, Any]] = {
    "llama": {"config": "LlamaConfig", "kwargs": {**_LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": True}},
    "llama-mha-untied": {
        "config": "LlamaConfig",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 4,
            "tie_word_embeddings": False,
            "attention_bias": True,
            "mlp_bias": True,
        },
    },
    "llama-rope-llama3": {
        "config": "LlamaConfig",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
        },
    },
    # dynamic NTK: the base changes only past max_position_embeddings, which no session reaches.
    "llama-rope-dynamic": {
        "config": "LlamaConfig",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 1,
            "rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
        },
    },
    # The same block with a SentencePiece-style tokenizer (the second tokenizer kind the suite covers).
    "llama-sp": {
        "config": "LlamaConfig",
        "tokenizer": "sentencepiece",
        "kwargs": {**_LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": True},
    },
    "llama-rope-linear": {
        "config": "LlamaConfig",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 2,
            "rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        },
    },
    # A sliding window shorter than the test sequences, so the window mask is exercised.
    "mistral": {"config": "MistralConfig", "kwargs": {**_LLAMA, "num_key_value_heads": 2, "sliding_window": 16}},
    # A window of 5 with one KV head for four query heads, untied: decode runs far past the window.
    "mistral-window5": {
        "config": "MistralConfig",
        "kwargs": {**_LLAMA, "num_key_value_heads": 1, "sliding_window": 5, "tie_word_embeddings": False},
    },
    "qwen2": {
        "config": "Qwen2Config",
        "kwargs": {
            **_SMALL,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "tie_word_embeddings": True,
        },
    },
    "qwen3": {
        "config": "Qwen3Config",
        "kwargs": {
            **_SMALL,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "tie_word_embeddings": True,
        },
    },
    "phi3": {
        "config": "Phi3Config",
        "kwargs": {**_LLAMA, "num_key_value_heads": 2, "original_max_position_embeddings": 256},
    },
    # longrope past the original context (16 < the suite's sequences): every position switches to the long
    # factors once a sequence outgrows it; head_dim 16 lets ONNX Runtime rotate inside GroupQueryAttention.
    "phi3-longrope": {
        "config": "Phi3Config",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 2,
            "original_max_position_embeddings": 16,
            "rope_parameters": {
                "rope_type": "longrope",
                "rope_theta": 10000.0,
                "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.1, 3.8],
                "long_factor": [1.0, 1.5, 2.4, 3.9, 6.0, 9.2, 13.5, 19.0],
                "original_max_position_embeddings": 16,
            },
        },
    },
    "phi3-partial-rotary": {
        "config": "Phi3Config",
        "kwargs": {
            **_LLAMA,
            "num_key_value_heads": 4,
            "partial_rotary_factor": 0.5,
            "original_max_position_embeddings": 256,
        },
    },
    "gemma": {
        "config": "GemmaConfig",
        "kwargs": {
            **_SMALL,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 24,
            "hidden_activation": "gelu_pytorch_tanh",
        },
    },
    "smollm": {
        "config": "LlamaConfig",
        "kwargs": {
            **_SMALL,
            "hidden_size": 48,
            "intermediate_size": 128,
            "num_attention_heads": 3,
            "num_key_value_heads": 1,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
        },
    },
    # Granite's four multipliers, head_dim 8 (rotated outside ONNX Runtime's GQA), 4 query heads per KV head.
    "granite": {
        "config": "GraniteConfig",
        "kwargs": {
            **_LLAMA,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "embedding_multiplier": 4.0,
            "residual_multiplier": 0.5,
            "attention_multiplier": 0.1,
            "logits_scaling": 2.5,
            "tie_word_embeddings": False,
        },
    },
    # Norms on the sublayers' outputs, q/k norms over the whole projections; MHA, head_dim 16, tied.
    "olmo2": {
        "config": "Olmo2Config",
        "kwargs": {**_LLAMA, "num_key_value_heads": 4, "tie_word_embeddings": True},
    },
    # NoPE on every second layer, and a window of 6 on those (4 layers: rope+full, nope+window, ...); GQA 3:1.
    "smollm3": {
        "config": "SmolLM3Config",
        "kwargs": {
            **_LLAMA,
            "num_hidden_layers": 4,
            "hidden_size": 48,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "no_rope_layer_interval": 2,
            "use_sliding_window": True,
            "sliding_window": 6,
            "tie_word_embeddings": True,
        },
    },
    # Sandwich norms, soft-capped scores and logits (caps small enough to bite on random weights),
    # query_pre_attn_scalar != head_dim, window 5 on alternate layers of 4; head_dim 24 (rotated outside GQA).
    "gemma2": {
        "config": "Gemma2Config",
        "kwargs": {
            **_SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 24,
            "query_pre_attn_scalar": 32,
            "sliding_window": 5,
            "attn_logit_softcapping": 3.0,
            "final_logit_softcapping": 5.0,
        },
    },
    # q/k norms per head, local rotary base 10000 on the sliding layers (window 6) and 1e6 on the global ones,
    # untied head; head_dim 16 lets ONNX Runtime rotate inside GQA with two tables.
    "gemma3": {
        "config": "Gemma3TextConfig",
        "kwargs": {
            **_SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 6,
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
            "tie_word_embeddings": False,
        },
    },
    # The text model of a multimodal checkpoint (Gemma3ForConditionalGeneration: weights under language_model.,
    # a tiny SigLIP tower beside them that tinylm ignores); tied head, head_dim 32, window 5 on 2 of 3 layers.
    "gemma3-multimodal": {
        "config": "Gemma3Config",
        "kwargs": {
            "text_config": {
                **_SMALL,
                "num_hidden_layers": 3,
                "hidden_size": 64,
                "intermediate_size": 96,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 32,
                "query_pre_attn_scalar": 32,
                "sliding_window": 5,
                "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            },
            "vision_config": {
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
            },
            "mm_tokens_per_image": 4,
        },
    },
    # LFM2's hybrid: gated short-conv layers (a conv state of the last kernel - 1 inputs) beside attention layers
    # (KV cache, q/k norms per head). Two variants between them vary the hidden size, head_dim (16 = H / nh, and
    # 24 != H / nh), GQA (2:1, 3:1), the kernel (3, 4), which layers attend, tying, conv biases and the ff width
    # transformers derives (block_auto_adjust_ff_dim: 150 -> 2/3 -> rounded up to 32 = 128).
    "lfm2": {
        "config": "Lfm2Config",
        "kwargs": {
            **_SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "conv_L_cache": 3,
            "layer_types": ["conv", "conv", "full_attention", "conv"],
            "block_auto_adjust_ff_dim": False,
            "tie_word_embeddings": True,
        },
    },
    "lfm2-k4": {
        "config": "Lfm2Config",
        "kwargs": {
            **_SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 48,
            "intermediate_size": 150,
            "block_multiple_of": 32,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "head_dim": 24,
            "conv_L_cache": 4,
            "conv_bias": True,
            "layer_types": ["full_attention", "conv", "full_attention", "conv"],
            "tie_word_embeddings": False,
        },
    },
    "gpt2": {
        "config": "GPT2Config",
        "kwargs": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256, "activation_function": "gelu_new"},
    },
    "bert": {
        "config": "BertConfig",
        "kwargs": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 128,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
        },
    },
    # Positions past the padding index; one token type (as XLM-R checkpoints have), GELU-tanh for variety.
    "roberta": {
        "config": "RobertaConfig",
        "kwargs": {
            "hidden_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 3,
            "intermediate_size": 96,
            "max_position_embeddings": 128,
            "type_vocab_size": 1,
            "hidden_act": "gelu",
        },
    },
    "xlm-roberta": {
        "config": "XLMRobertaConfig",
        "kwargs": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 130,
            "type_vocab_size": 1,
            "hidden_act": "gelu",
        },
    },
    # Rotary, GeGLU, LayerNorms without biases; local layers see 16 tokens around each query (|q - k| <= 8), so the
    # suite's 40+ token inputs reach past the window; global every 3rd layer; rotary bases 1e4 local / 1.6e5 global;
    # head_dim 16; CLS pooling, as gte-modernbert's sentence-transformers config has.
    "modernbert": {
        "config": "ModernBertConfig",
        "pooling": "cls",
        "kwargs": {
            "hidden_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 96,
            "max_position_embeddings": 128,
            "local_attention": 16,
            "global_attn_every_n_layers": 3,
            "global_rope_theta": 160000.0,
            "local_rope_theta": 10000.0,
        },
    },
    # Mean pooling (nomic modernbert-embed), head_dim 8 (6 heads of 48), three layers, a global one every 2nd
    # layer, window 10, biases on the projections and the norms.
    "modernbert-mean": {
        "config": "ModernBertConfig",
        "kwargs": {
            "hidden_size": 48,
            "num_hidden_layers": 3,
            "num_attention_heads": 6,
            "intermediate_size": 64,
            "max_position_embeddings": 128,
            "local_attention": 10,
            "global_attn_every_n_layers": 2,
            "global_rope_theta": 50000.0,
            "local_rope_theta": 1000.0,
            "attention_bias": True,
            "mlp_bias": True,
            "norm_bias": True,
        },
    },
}
ENCODER_VARIANTS = ("bert", "roberta", "xlm-roberta", "modernbert", "modernbert-mean")
DECODER_VARIANTS = tuple(v for v in VARIANTS if v not in ENCODER_VARIANTS)

DECODER_VOCAB = 448
ENCODER_VOCAB = 384
BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|endoftext|>"
DECODER_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _randomize(model: Any, seed: int) -> None:
    """Spread the weights: matrices N(0, 0.2), vectors that scale (norms) 1 + N(0, 0.1), biases N(0, 0.1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            if param.dim() >= 2:
                param.copy_(noise * 0.2)
            elif name.endswith("bias"):
                param.copy_(noise * 0.1)
            else:
                param.copy_(1.0 + noise * 0.1)


def write_decoder_tokenizer(folder: Path, max_length: int, *, kind: str = "byte-level") -> dict[str, int]:
    """Write the decoder tokenizer files (ChatML template): byte-level BPE, or `kind="sentencepiece"`
    (Metaspace BPE); returns vocab_size and special token ids."""
    make = sentencepiece_bpe if kind == "sentencepiece" else byte_level_bpe
    tok = make(DECODER_VOCAB, DECODER_SPECIAL_TOKENS)
    tok.save(str(folder / "tokenizer.json"))
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "unk_token": None,
            "add_bos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": max_length,
            "chat_template": CHATML_TEMPLATE,
        },
    )
    return {
        "vocab_size": tok.get_vocab_size(),
        "bos_token_id": tok.token_to_id(BOS),
        "eos_token_id": tok.token_to_id(EOS),
        "pad_token_id": tok.token_to_id(PAD),
    }


def write_encoder_tokenizer(folder: Path, max_length: int) -> dict[str, int]:
    """Write the WordPiece tokenizer files (BERT); returns vocab_size and pad_token_id."""
    tok = wordpiece(ENCODER_VOCAB)
    tok.save(str(folder / "tokenizer.json"))
    pad, unk, cls, sep, mask = BERT_SPECIAL_TOKENS
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "pad_token": pad,
            "unk_token": unk,
            "cls_token": cls,
            "sep_token": sep,
            "mask_token": mask,
            "do_lower_case": True,
            "clean_up_tokenization_spaces": True,
            "model_max_length": max_length,
        },
    )
    return {"vocab_size": tok.get_vocab_size(), "pad_token_id": tok.token_to_id(pad)}


def _write_sentence_transformers(folder: Path, hidden: int, max_seq_length: int, pooling: str = "mean") -> None:
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})


def _special_ids(folder: Path, *tokens: str) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return [tok.token_to_id(t) for t in tokens]


def build_model(variant: str, folder: Path, *, seed: int = 0) -> Path:
    """Build the tiny random model `variant` (a key of `VARIANTS`) into `folder` and return it.

    Writes config.json, model.safetensors, generation_config.json (decoders), tokenizer.json,
    tokenizer_config.json (special tokens, ChatML template for decoders) and, for encoders, the
    sentence-transformers files (mean pooling unless the variant says `pooling`, normalisation, max_seq_length 64).
    Deterministic for a given `seed`.
    """
    import torch
    import transformers

    try:
        entry = VARIANTS[variant]
    except KeyError:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = dict(entry["kwargs"])
    encoder = variant in ENCODER_VARIANTS
    sized = kwargs.get("text_config") or kwargs  # multimodal configs: the text model's sizes and token ids
    max_length = int(sized.get("max_position_embeddings") or sized.get("n_positions") or 128)
    if encoder:
        special = write_encoder_tokenizer(folder, max_length)
        kwargs.update(special)
        if entry["config"] == "ModernBertConfig":  # its CLS / SEP / BOS / EOS ids default past a tiny vocabulary
            cls_id, sep_id = _special_ids(folder, "[CLS]", "[SEP]")
            kwargs.update(cls_token_id=cls_id, bos_token_id=cls_id, sep_token_id=sep_id, eos_token_id=sep_id)
        _write_sentence_transformers(folder, kwargs["hidden_size"], 64, entry.get("pooling", "mean"))
    else:
        special = write_decoder_tokenizer(folder, max_length, kind=entry.get("tokenizer", "byte-level"))
        if "text_config" in kwargs:
            kwargs["text_config"] = {**kwargs["text_config"], **special}
        else:
            kwargs.update(special)
    config = getattr(transformers, entry["config"])(**kwargs)
    model_cls = transformers.AutoModel if encoder else transformers.AutoModelForCausalLM
    torch.manual_seed(seed)
    with torch.device("cpu"):
        pooler = {"add_pooling_layer": False} if encoder and entry["config"] != "ModernBertConfig" else {}
        model = model_cls.from_config(config, **pooler)
    _randomize(model, seed)
    model.eval()
    logging = transformers.utils.logging
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # save_pretrained draws one per call
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bars:
            logging.enable_progress_bar()
    return folder


# A small trained model: int8/int4 quality needs trained weights (random ones have no margins). ------


def _corpus() -> str:
    """Deterministic prose for the tiny model to learn (a grammar with few choices, so it is learnable)."""
    import random

    rng = random.Random(0)
    who = ["the cat", "a dog", "my friend", "the old man", "our teacher", "the baker"]
    did = ["walked to", "looked at", "painted", "talked about", "ran past", "waited near"]
    what = ["the river", "a small house", "the green park", "the harbour", "a red boat", "the market"]
    when = ["in the morning", "after lunch", "before the rain", "at night", "on sunday"]
    return " ".join(f"{rng.choice(who)} {rng.choice(did)} {rng.choice(what)} {rng.choice(when)}." for _ in range(400))


def train_tiny_decoder(folder: Path, *, steps: int = 300) -> list[list[int]]:
    """Train a 2-layer llama for `steps` Adam steps (~15 s on 2 cores) on a small synthetic grammar, save it
    into `folder`, and return 20 held-out prompts (12 token ids each) for quality checks of lossy precisions."""
    import torch
    import transformers

    from ..tokenizer import Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = write_decoder_tokenizer(folder, 256)
    ids = torch.tensor(Tokenizer(folder).encode(_corpus(), add_special_tokens=False))
    config = transformers.LlamaConfig(
        hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=True, **special,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    seq, batch = 64, 16
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - seq - 1, (batch,), generator=gen)
        x = torch.stack([ids[s : s + seq + 1] for s in starts.tolist()])  # (B, seq + 1)
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1].clone(), logits_to_keep=0).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    held_out = Tokenizer(folder).encode(_corpus()[-2000:], add_special_tokens=False)
    return [held_out[i * 20 : i * 20 + 12] for i in range(20)]
