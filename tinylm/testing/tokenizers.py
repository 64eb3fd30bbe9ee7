"""Tiny tokenizers trained in memory, for tests: no download, no network, deterministic.

    byte_level_bpe(448, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])   # decoders (GPT-2 style)
    wordpiece(384)                                                       # BERT encoders

The built-in corpus mixes English, accented Latin, CJK and emoji, so the byte-level vocabulary holds
multi-byte tokens and streaming detokenization has split UTF-8 characters to get right.
Only the `tokenizers` library is used; it is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["CORPUS", "byte_level_bpe", "sentencepiece_bpe", "wordpiece", "BERT_SPECIAL_TOKENS"]

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "My parcel never arrived, and the tracking page has not changed for a week.",
    "Please draft a short, polite reply to the customer and offer a refund or a replacement.",
    "Small language models run on edge hardware: phones, laptops, and tiny boards.",
    "Hello world! How are you today? I am fine, thank you very much.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 -7 1e-5",
    "def forward(self, x):\n    return self.mlp(self.norm(x)) + x\n",
    "Le café est très chaud ; l'été à Paris, où il fait beau, est agréable.",
    "Über die Brücke gehen Mädchen und Jungen; schöne Grüße aus München.",
    "El niño comió piñas y jalapeños en la mañana. ¿Dónde está la estación?",
    "Ça va? Não sei. Crème brûlée, façade, naïve, coöperate, Ångström, Øresund.",
    "東京は日本の首都です。今日は良い天気ですね。",
    "我喜欢学习语言模型。小模型也很有用。",
    "한국어 문장도 조금 있습니다. 감사합니다.",
    "Emoji: 😀 😃 😄 🚀 🌍 🎉 👍🏽 ❤️ 🤖 🧠 — and symbols: © ® ™ € £ ¥ ° ± × ÷ → ←",
    "Привет, мир! Как дела? Ελληνικά γράμματα: αβγδε.",
    "Customer support: order #12345 was shipped on Monday; expected delivery Friday.",
    "Summarise the following text in one sentence, then list three key points.",
    "Translate to French: the weather is nice today. Traduire: il fait beau aujourd'hui.",
    "A tokenizer splits text into tokens; a detokenizer joins them back without losing spaces.",
)


@lru_cache(maxsize=16)
def _bpe_json(vocab_size: int, special_tokens: tuple[str, ...]) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    return tok.to_str()


def byte_level_bpe(vocab_size: int, special_tokens: Sequence[str]) -> Tokenizer:
    """A byte-level BPE tokenizer (GPT-2/Llama-3/Qwen style) of at most `vocab_size` tokens.

    The special tokens take the first ids, in order. It adds no BOS/EOS on encode (like Qwen's
    and SmolLM's tokenizers); chat templates write them.
    """
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_bpe_json(int(vocab_size), tuple(special_tokens)))


#: Extra training lines for the SentencePiece-style tokenizer, so JSON, digits and punctuation get
#: pieces of their own (anything else still round-trips through byte fallback).
STRUCTURED_TEXT = (
    '{"intent": "refund", "order_number": 123456, "priority": -0.5e+3, "items": ["a", "b"]}',
    '{"customer": {"name": "Ann Lee", "vip": true, "note": null}, "ok": false} [1, 2.0, 3]',
    "ORD-000000 ORD-987654 refund delivery account invoice other yes no",
    "\\ \" / \t \n \r \b \f ' ` ~ ! @ # $ % ^ & * ( ) _ + = | < > ? ; : , .",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789",
)


@lru_cache(maxsize=16)
def _sentencepiece_json(vocab_size: int, special_tokens: tuple[str, ...]) -> str:
    """Laid out as Llama-2's and Mistral's tokenizer.json are: a "▁"-prepending normalizer, BPE with
    byte fallback over <0x00>..<0xFF> tokens, and a decoder that undoes both."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 256, special_tokens=["<unk>", *special_tokens], min_frequency=1, show_progress=False
    )
    tok.train_from_iterator(list(CORPUS + STRUCTURED_TEXT) * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):  # the byte-fallback pieces, after the learned ones
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return json.dumps(data, ensure_ascii=False)


def sentencepiece_bpe(vocab_size: int, special_tokens: Sequence[str]) -> Tokenizer:
    """A SentencePiece-style BPE tokenizer (Llama-2/Mistral layout: words carry a leading "▁",
    unknown characters fall back to byte pieces) of at most `vocab_size` tokens; "<unk>" is id 0."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_sentencepiece_json(int(vocab_size), tuple(special_tokens)))


@lru_cache(maxsize=16)
def _wordpiece_json(vocab_size: int) -> str:
    # Built by hand rather than with WordPieceTrainer, whose choice among equally frequent
    # sub-words changes from run to run: special tokens, then every character (alone and as a
    # "##" continuation), then whole words by frequency, ties broken alphabetically.
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for text in CORPUS for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab: dict[str, int] = {}
    for token in [*BERT_SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    for word, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(list(BERT_SPECIAL_TOKENS))
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok.to_str()


def wordpiece(vocab_size: int) -> Tokenizer:
    """A BERT WordPiece tokenizer of at most `vocab_size` tokens: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3,
    [MASK]=4, lower-cased, with the "[CLS] $A [SEP]" post-processor."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_wordpiece_json(int(vocab_size)))
