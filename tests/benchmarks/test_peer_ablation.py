"""The linear peer's ablations of benchmarks/peer_ablation.py."""

import os

import numpy as np
import pytest

from benchmarks import peer_ablation
from mmjax import linear_peer
from mmjax.data import records, schema
from mmjax.tasks import TASKS

KEYWORDS = {"awful": 0, "fine": 1, "great": 2}  # sentiment is the keyword's class
FILLER = "the a movie today we they said really was this that show".split()


def _dialogues(seed: int, count: int, noise: float = 0.0) -> list[schema.Dialogue]:
    """Sentiment is the keyword's class, a random class with probability ``noise``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        keys = [list(KEYWORDS)[(i + t) % 3] for t in range(3)]
        texts = [" ".join(list(rng.choice(FILLER, 3)) + [k] + list(rng.choice(FILLER, 2))) for k in keys]
        out.append(schema.Dialogue(
            f"d{seed}_{i}", [f"d{seed}_{i}_{t}" for t in range(3)], ["A", "B", "A"], texts,
            [np.ones(6, np.int32)] * 3, [None] * 3, [None] * 3,
            {"sentiment": np.array([KEYWORDS[k] if rng.random() > noise else rng.integers(3) for k in keys],
                                   np.int32)}))
    return out


def test_vectorizer_changes_reach_every_tfidf_part():
    latin = peer_ablation.vectorizer("latin", {"use_idf": False, "norm": "l1"})
    parts = [t for _, t in latin.transformer_list]
    assert len(parts) == 2 and all(not p.use_idf and p.norm == "l1" for p in parts)
    cjk = peer_ablation.vectorizer("cjk", {"sublinear_tf": False})
    assert cjk.ngram_range == (1, 3) and not cjk.sublinear_tf
    assert peer_ablation.vectorizer("cjk", {}).sublinear_tf  # the peer itself is unchanged


def _corpus(path: str, noise: float) -> str:
    """Train and validation records (no test split: nothing here may read it)."""
    records.write_corpus(path, "keywords", {s: _dialogues(seed, n, noise) for seed, (s, n) in
                                            enumerate((("train", 20), ("validation", 6), ("test", 6)))},
                         tasks=[TASKS["sentiment"]], audio_dim=0, visual_dim=0, text={"kind": "word"})
    for name in os.listdir(path):
        if name.startswith("test"):
            os.remove(os.path.join(path, name))
    return path


def test_every_variant_learns_a_keyword_on_validation(tmp_path):
    path = _corpus(str(tmp_path / "keywords"), noise=0.0)
    results = peer_ablation.run(path, epochs=4)
    assert set(results) == set(peer_ablation.VARIANTS)
    for variant, found in results.items():
        best, where = found["sentiment"]
        assert best == pytest.approx(1.0), variant  # the keyword decides the class
        assert where.startswith("epoch " if variant == "early_stopped" else "C=")


def test_the_peer_variant_is_the_peer(tmp_path):
    path = _corpus(str(tmp_path / "noisy"), noise=0.4)  # scores below 1 that depend on C
    found = peer_ablation.run(path, variants=("peer",))["peer"]["sentiment"]
    chosen = linear_peer.run(path, str(tmp_path / "peer"), split="validation")["selection"]["sentiment"]
    assert found == (chosen["validation_score"], f"C={chosen['C']:g}") and found[0] < 1
