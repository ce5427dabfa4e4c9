"""The linear peer's ablations of benchmarks/peer_ablation.py."""

import os

import numpy as np
import pytest

from benchmarks import peer_ablation
from mmjax.data import records, schema
from mmjax.tasks import TASKS

KEYWORDS = {"awful": 0, "fine": 1, "great": 2}  # sentiment is the keyword's class
FILLER = "the a movie today we they said really was this that show".split()


def _dialogues(seed: int, count: int) -> list[schema.Dialogue]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        keys = [list(KEYWORDS)[(i + t) % 3] for t in range(3)]
        texts = [" ".join(list(rng.choice(FILLER, 3)) + [k] + list(rng.choice(FILLER, 2))) for k in keys]
        out.append(schema.Dialogue(
            f"d{seed}_{i}", [f"d{seed}_{i}_{t}" for t in range(3)], ["A", "B", "A"], texts,
            [np.ones(6, np.int32)] * 3, [None] * 3, [None] * 3,
            {"sentiment": np.array([KEYWORDS[k] for k in keys], np.int32)}))
    return out


def test_vectorizer_changes_reach_every_tfidf_part():
    latin = peer_ablation.vectorizer("latin", {"use_idf": False, "norm": "l1"})
    parts = [t for _, t in latin.transformer_list]
    assert len(parts) == 2 and all(not p.use_idf and p.norm == "l1" for p in parts)
    cjk = peer_ablation.vectorizer("cjk", {"sublinear_tf": False})
    assert cjk.ngram_range == (1, 3) and not cjk.sublinear_tf
    assert peer_ablation.vectorizer("cjk", {}).sublinear_tf  # the peer itself is unchanged


def test_every_variant_learns_a_keyword_on_validation(tmp_path):
    path = str(tmp_path / "keywords")
    records.write_corpus(path, "keywords", {s: _dialogues(seed, n) for seed, (s, n) in
                                            enumerate((("train", 20), ("validation", 6), ("test", 6)))},
                         tasks=[TASKS["sentiment"]], audio_dim=0, visual_dim=0, text={"kind": "word"})
    for name in os.listdir(path):  # validation only: the test split is never read
        if name.startswith("test"):
            os.remove(os.path.join(path, name))
    results = peer_ablation.run(path, epochs=4)
    assert set(results) == set(peer_ablation.VARIANTS)
    for variant, found in results.items():
        best, where = found["sentiment"]
        assert best == pytest.approx(1.0), variant  # the keyword decides the class
        assert where.startswith("epoch " if variant == "early_stopped" else "C=")
