"""MMSA pickles: the layout is read into dialogues with features, and the restricted unpickler
refuses anything but numpy arrays and built-in containers (nothing in a hostile file runs)."""

import os
import pickle

import numpy as np
import pytest

from mmjax.data import records
from mmjax.data.corpora import common, conversion, mmsa
from mmjax.errors import RecordError


def _split(ids, scores):
    n = len(ids)
    return {"id": np.array(ids, dtype=object), "raw_text": np.array([f"words of {i}" for i in ids]),
            "regression_labels": np.array(scores, np.float32), "text": np.zeros((n, 3, 768), np.float32),
            "audio": np.arange(n * 4 * 2, dtype=np.float32).reshape(n, 4, 2), "audio_lengths": [4, 2, 0][:n],
            "vision": np.ones((n, 3, 5), np.float32)}


DATA = {"train": _split(["v1$_$10", "v1$_$2", "v2$_$1"], [-1.2, 0.0, 2.6]),
        "valid": _split(["v3$_$1"], [0.4]), "test": _split(["v4$_$a"], [-3.0])}


def _prepare(tmp_path, data=DATA, protocol=pickle.HIGHEST_PROTOCOL, **options):
    path = tmp_path / "mosi.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return conversion.convert(mmsa, str(path), str(tmp_path / "out"), common.Options(**options), tokenizer="word")


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_layout_to_dialogues_sentiment_and_features(tmp_path, protocol):
    manifest = _prepare(tmp_path, protocol=protocol)
    assert manifest["tasks"] == {"sentiment": {"kind": "classification", "labels": ["negative", "neutral", "positive"]},
                                 "sentiment_intensity": {"kind": "regression", "range": [-3.0, 3.0]}}
    assert manifest["features"] == {"audio_dim": 2, "visual_dim": 5}
    v1, v2 = (records.DialogueSource(str(tmp_path / "out"), "train")[i] for i in range(2))
    assert v1.utterance_ids == ["v1$_$2", "v1$_$10"] and v1.speakers == ["v1", "v1"]  # clips in numeric order
    assert v1.labels["sentiment"].tolist() == [1, 0] and v2.labels["sentiment"].tolist() == [2]
    assert np.allclose(v1.labels["sentiment_intensity"], [0.0, -1.2]) and v2.labels["sentiment_intensity"] == [np.float32(2.6)]
    assert v1.texts == ["words of v1$_$2", "words of v1$_$10"]
    assert v1.audio[1].shape == (4, 2) and v1.audio[0].shape == (2, 2)  # audio_lengths trims the padding
    assert v2.audio == [None] and v2.visual[0].shape == (3, 5)  # length 0: absent
    assert manifest["splits"]["validation"]["class_counts"]["sentiment"]["positive"] == 1


class _Hostile:
    def __reduce__(self):
        return os.system, (f"touch {_Hostile.marker}",)


def test_a_pickle_with_any_other_global_is_refused_and_nothing_runs(tmp_path):
    _Hostile.marker = tmp_path / "pwned"
    data = {"train": dict(_split(["v$_$1"], [1.0]), audio=_Hostile())}
    with pytest.raises(RecordError, match=r"mosi.pkl: the pickle refers to (posix|os)\.system, which is refused; "
                                          r"expected only numpy arrays, lists, dicts, strings and numbers"):
        _prepare(tmp_path, data)
    assert not _Hostile.marker.exists()
    with pytest.raises(RecordError, match=r"refers to collections.OrderedDict, which is refused"):
        _prepare(tmp_path, {"train": __import__("collections").OrderedDict(_split(["v$_$1"], [1.0]))})


@pytest.mark.parametrize("payload, what", [
    (b"c__builtin__\nbytearray\nJ\x00\x8c\x86G\x85R.", r"a 1200000000 uint8 array \(1,200,000,000 bytes\)"),
    (b"cnumpy\nndarray\nJ\x00\x8c\x86G\x85R.", r"a 1200000000 float64 array"),
    (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x8c\x86G\x85X\x01\x00\x00\x00f\x87R.",
     r"a \(1200000000,\) float32 array"),
])
def test_a_small_pickle_cannot_allocate_much(tmp_path, payload, what):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(b"\x80\x02" + payload)
    with pytest.raises(RecordError, match=rf"bomb.pkl: the pickle asks for {what}.* but holds \d+ bytes"):
        mmsa.load(str(path))


def test_ch_sims_scores_make_a_narrower_range_and_a_score_outside_the_range_is_refused(tmp_path):
    sims = {"train": _split(["v1$_$1", "v1$_$2", "v2$_$1"], [-0.8, 0.0, 1.0])}
    assert _prepare(tmp_path, sims)["tasks"]["sentiment_intensity"]["range"] == [-1.0, 1.0]
    with pytest.raises(RecordError, match=r"\['train'\] row 2 \(id 'v2\$_\$1'\): regression_labels is 3.5; expected a "
                                          r"sentiment score in \[-3, 3\]"):
        _prepare(tmp_path, {"train": _split(["v1$_$1", "v1$_$2", "v2$_$1"], [-0.8, 0.0, 3.5])})


def test_bad_content_names_the_split_row_and_expectation(tmp_path):
    data = {"train": dict(_split(["v1$_$1", "v1$_$2"], [1.0, 0.0]), vision=np.full((2, 3, 5), np.nan, np.float32))}
    with pytest.raises(RecordError, match=r"mosi.pkl \['train'\] row 0 \(id 'v1\$_\$1'\): visual features contain 15 NaN"):
        _prepare(tmp_path, data)
    data = {"train": dict(_split(["v1$_$1", "v1-2"], [1.0, float("nan")]))}
    with pytest.raises(RecordError, match=r"\['train'\] row 1: id 'v1-2': expected '<video>\$_\$<clip>'"):
        _prepare(tmp_path, data)
    manifest = _prepare(tmp_path, {"train": dict(_split(["v1$_$1", "v1$_$2"], [1.0, float("nan")]))}, skip_bad=True)
    assert manifest["report"]["skipped"] == {"unknown label (label dropped)": 1}
    with pytest.raises(RecordError, match=r"\['train'\]\['regression_labels'\]: has 1 entries, expected 2"):
        _prepare(tmp_path, {"train": dict(_split(["v1$_$1", "v1$_$2"], [1.0]))})
    with pytest.raises(RecordError, match=r"unknown split keys \['dev'\]; expected \['train', 'valid', 'test'\]"):
        _prepare(tmp_path, {"train": DATA["train"], "dev": DATA["valid"]})
