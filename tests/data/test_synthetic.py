import numpy as np

from mmjax.data import schema
from mmjax.data.corpora import synthetic
from mmjax.tasks import TASKS


def test_same_seed_same_corpus_other_seed_other_corpus():
    first = [schema.serialize(d, synthetic.AUDIO_DIM, synthetic.VISUAL_DIM) for d in synthetic.generate("train", 20, seed=3)]
    again = [schema.serialize(d, synthetic.AUDIO_DIM, synthetic.VISUAL_DIM) for d in synthetic.generate("train", 20, seed=3)]
    other = [schema.serialize(d, synthetic.AUDIO_DIM, synthetic.VISUAL_DIM) for d in synthetic.generate("train", 20, seed=4)]
    assert first == again
    assert first != other
    test_split = [schema.serialize(d, synthetic.AUDIO_DIM, synthetic.VISUAL_DIM) for d in synthetic.generate("test", 20, seed=3)]
    assert not set(first) & set(test_split)


def _labels(dialogues, task):
    return np.concatenate([d.labels[task] for d in dialogues])


def test_label_balance():
    dialogues = synthetic.generate("train", 400, seed=0)
    for task in TASKS.values():
        if task.kind != "classification":
            continue
        counts = np.bincount(_labels(dialogues, task.name), minlength=task.num_classes)
        assert counts.sum() > 3000
        assert counts.min() / counts.sum() >= 0.01, f"{task.name}: a class is (nearly) absent: {counts}"
        if task.name in ("sentiment", "emotion"):
            assert counts.max() / counts.sum() < 0.5, f"{task.name} is dominated by one class: {counts}"
    assert 0.13 < _labels(dialogues, "sarcasm").mean() < 0.19
    assert 0.07 < _labels(dialogues, "humor").mean() < 0.2


def test_planted_signals():
    """Humor needs the previous turn's setup; sarcastic words are positive but the sentiment negative."""
    for d in synthetic.generate("train", 200, seed=1):
        for t in range(d.num_turns):
            words = d.texts[t].split()
            if d.labels["humor"][t]:
                assert t > 0 and any(w.startswith("setup_") for w in d.texts[t - 1].split())
                assert any(w.startswith("punchline_") for w in words)
            if d.labels["sarcasm"][t]:
                assert d.labels["sentiment"][t] == TASKS["sentiment"].labels.index("negative")
                assert any(w.startswith("good_") for w in words)
                assert not any(w.startswith("bad_") for w in words)
                assert d.labels["emotion_sentiment"][t] <= 2  # conflicting or neutral, never agreeing
            assert d.audio[t] is not None or d.visual[t] is not None
            # Intensity: the sentiment's sign, a size from the arousal (1 or 2) and polarity words (1 or 2).
            intensity, sentiment = d.labels["sentiment_intensity"][t], d.labels["sentiment"][t] - 1
            polar = sum(w.startswith(("good_", "bad_")) for w in words)
            assert np.sign(intensity) == sentiment and (intensity == 0) == (polar == 0)
            assert intensity == 0 or abs(intensity) - (polar - 1) / 2 in (1, 2)


def test_text_alone_cannot_tell_sarcasm():
    """Among positively worded utterances sarcasm is a clear minority, so a text-only model's best
    guess is 'none' everywhere (its sarcasm macro-F1 stays near 0.45)."""
    positive_words = sarcastic = 0
    for d in synthetic.generate("train", 400, seed=0):
        for t in range(d.num_turns):
            if any(w.startswith("good_") for w in d.texts[t].split()):
                positive_words += 1
                sarcastic += int(d.labels["sarcasm"][t])
    assert 0.25 < sarcastic / positive_words < 0.4


def test_feature_sizes_are_configurable_and_recorded_in_the_spec():
    features = {"audio_dim": 7, "visual_dim": 5, "audio_frames": (3, 3), "visual_frames": (2, 4)}
    dialogues = synthetic.generate("train", 5, seed=1, features=features)
    audio = [a for d in dialogues for a in d.audio if a is not None]
    visual = [v for d in dialogues for v in d.visual if v is not None]
    assert {a.shape for a in audio} == {(3, 7)}
    assert {v.shape[1] for v in visual} == {5} and {v.shape[0] for v in visual} <= {2, 3, 4}
    spec = synthetic.spec({"train": 5}, 1, features)
    assert spec["features"] == {"audio_dim": 7, "visual_dim": 5, "audio_frames": [3, 3], "visual_frames": [2, 4]}
    assert synthetic.spec({"train": 5}, 1)["features"]["audio_dim"] == synthetic.AUDIO_DIM
