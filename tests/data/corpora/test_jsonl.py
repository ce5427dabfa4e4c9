"""The generic JSONL format, and through it the shared converter core: feature attachment,
absent modalities, bad input (one error naming file and line) and --skip-bad accounting."""

import json
import os

import numpy as np
import pytest


from mmjax.data import records
from mmjax.data.corpora import common, conversion, jsonl
from mmjax.models import text_states
from mmjax.errors import ConfigError, RecordError

ROWS = [
    {"dialogue": "d1", "turn": 1, "speaker": "B", "text": "fine thanks", "labels": {"sentiment": "positive", "emotion": "joy"}},
    {"dialogue": "d1", "turn": 0, "speaker": "A", "text": "how are you", "labels": {"sentiment": "neutral", "emotion_sentiment": -1}},
    {"dialogue": 7, "turn": 0, "speaker": "A", "text": "oh great", "id": "clips/7", "labels": {"sarcasm": "sarcastic", "emotion": None}},
]


def _write(directory, rows, split="train"):
    directory.mkdir(exist_ok=True)
    (directory / f"{split}.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(directory)


def _prepare(tmp_path, rows=ROWS, skip_bad=False, tokenizer="word", validation_fraction=0.0, **kwargs):
    corpus = _write(tmp_path / "corpus", rows)
    return conversion.convert(jsonl, corpus, str(tmp_path / "out"),
                              common.Options(skip_bad=skip_bad, validation_fraction=validation_fraction),
                              tokenizer=tokenizer, **kwargs)


def _dialogues(tmp_path, split="train"):
    source = records.DialogueSource(str(tmp_path / "out"), split)
    return [source[i] for i in range(len(source))]


def test_turn_order_ids_and_any_subset_of_tasks(tmp_path):
    manifest = _prepare(tmp_path)
    assert list(manifest["tasks"]) == ["sentiment", "emotion", "sarcasm", "emotion_sentiment"]
    assert manifest["features"] == {"audio_dim": 0, "visual_dim": 0}
    d1, d7 = _dialogues(tmp_path)
    assert (d1.dialogue_id, d1.utterance_ids, d1.speakers) == ("d1", ["d1_0", "d1_1"], ["A", "B"])
    assert d1.labels["sentiment"].tolist() == [1, 2] and d1.labels["emotion"].tolist() == [-1, 1]
    assert d1.labels["emotion_sentiment"].tolist() == [1, -1] and d1.labels["sarcasm"].tolist() == [-1, -1]
    assert d7.utterance_ids == ["clips/7"] and d7.labels["sarcasm"].tolist() == [1]
    assert d1.audio == [None, None] and d1.visual == [None, None]  # absent, not zeros
    assert manifest["splits"]["train"]["class_counts"]["emotion"]["joy"] == 1


def test_features_from_row_files_npz_and_npy_directories_absent_elsewhere(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "a.npy", np.ones((3, 4), np.float32))
    rows = [dict(ROWS[0], audio="a.npy"), ROWS[1], ROWS[2]]
    np.savez(tmp_path / "visual.npz", **{"d1_0": np.zeros((2, 5)), "clips/7": np.arange(5.0)})
    manifest = _prepare(tmp_path, rows, visual=str(tmp_path / "visual.npz"))
    assert manifest["features"] == {"audio_dim": 4, "visual_dim": 5}
    d1, d7 = _dialogues(tmp_path)
    assert d1.audio[0] is None and d1.audio[1].shape == (3, 4)
    assert d1.visual[0].shape == (2, 5) and d1.visual[1] is None and d7.visual[0].tolist() == [list(range(5))]
    assert manifest["report"]["features"]["visual"]["absent"] == {"train": 1}
    # the same arrays as a directory of <utterance id>.npy, ids with "/" in subdirectories
    os.makedirs(tmp_path / "vis" / "clips")
    np.save(tmp_path / "vis" / "d1_0.npy", np.zeros((2, 5)))
    np.save(tmp_path / "vis" / "clips" / "7.npy", np.arange(5.0))
    assert _prepare(tmp_path, rows, visual=str(tmp_path / "vis"))["report"]["features"]["visual"]["absent"] == {"train": 1}
    with pytest.raises(ConfigError, match="already carries audio features"):
        _prepare(tmp_path, rows, audio=str(tmp_path / "vis"))


@pytest.mark.parametrize("row,message", [
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "lables": {}},
     r"line 4: unknown fields \['lables'\]; expected fields \['dialogue', 'turn', 'speaker', 'text'\]"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"emotion": 0.5}},
     r"task 'emotion' mixes kinds of labels in train.jsonl \(classification first at .*train.jsonl line 1; "
     r"regression first at .*line 4\)"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"emotion": ["joy"]}},
     r"task 'emotion' mixes kinds .*multilabel first at .*line 4"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"emotion": {"joy": 1}}},
     r"line 4: labels.emotion is \{'joy': 1\}; expected a label name \(a string\), a finite number, a list"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"emotion": ["joy", "joy"]}},
     r"line 4: labels.emotion is \['joy', 'joy'\]; expected .* a list of distinct label names"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"irony": "none"}},
     r"task 'irony' has the single label \['none'\] in train.jsonl; a classification task needs at least two"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "  ", "labels": {}},
     r"line 4: utterance 'd_0' has empty text, expected the words spoken"),
    ({"dialogue": "x", "turn": 0, "speaker": "A", "text": "x", "id": "d1_1"},
     r"line 4: utterance id 'd1_1' is already used at .*train.jsonl line 1; expected unique ids"),
    ({"dialogue": "d1", "turn": 1, "speaker": "A", "text": "x"},
     r"line 4: dialogue 'd1' turn 1 is already at .*train.jsonl line 1; expected each turn once"),
    ({"dialogue": "d", "turn": -1, "speaker": "A", "text": "x"}, r"line 4: turn must be an integer >= 0, got -1"),
    ({"dialogue": "d", "turn": "0", "speaker": "A", "text": "x"}, r"line 4: turn must be an integer >= 0, got '0'"),
    ({"dialogue": "d", "turn": 0, "speaker": 3, "text": "x"}, r"line 4: speaker must be a string, got 3"),
    ({"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": []}, r"line 4: labels must be an object"),
    ('{"dialogue": "d", ', r"line 4: not valid JSON .*; expected one JSON object per line"),
])
def test_a_bad_row_is_one_error_naming_file_line_and_expectation(tmp_path, row, message):
    with pytest.raises(RecordError, match=message):
        _prepare(tmp_path, ROWS + [row])
    assert not os.path.exists(tmp_path / "out")
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


@pytest.mark.parametrize("array,message", [
    (np.array([[1.0, np.nan, np.inf]]), r"visual.npz\['d1_1'\]: visual features contain 2 NaN or infinite values, expected finite"),
    (np.ones((2, 4)), r"visual.npz\['d1_1'\]: visual features have dimension 4, expected 3 \(the dimension of .*'d1_0'"),
    (np.ones((2, 3, 1)), r"visual.npz\['d1_1'\]: visual features have shape \[2, 3, 1\], expected \[frames>0, dim>0\]"),
])
def test_a_bad_feature_array_is_one_error_naming_its_file_key_and_expectation(tmp_path, array, message):
    np.savez(tmp_path / "visual.npz", d1_0=np.ones((1, 3)), d1_1=array)
    with pytest.raises(RecordError, match=message):
        _prepare(tmp_path, visual=str(tmp_path / "visual.npz"))


def test_feature_arrays_of_unknown_utterances_are_an_error(tmp_path):
    np.savez(tmp_path / "audio.npz", d1_0=np.ones((1, 3)), dia9=np.ones((1, 3)))
    with pytest.raises(RecordError, match=r"audio.npz: 1 audio arrays are keyed by ids that are not utterances "
                                          r"of the corpus \(e.g. \['dia9'\]\); expected utterance ids such as 'd1_0'"):
        _prepare(tmp_path, audio=str(tmp_path / "audio.npz"))


def test_wrong_encoding_names_the_line_and_the_expected_encoding(tmp_path):
    corpus = tmp_path / "corpus"
    _write(corpus, ROWS)
    with open(corpus / "train.jsonl", "ab") as f:
        f.write('{"dialogue": "d", "turn": 0, "speaker": "A", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(RecordError, match=r"train.jsonl line 4: byte 0xe9 is not valid utf-8; expected a utf-8 file"):
        conversion.convert(jsonl, str(corpus), str(tmp_path / "out"), tokenizer="word")
    with pytest.raises(ConfigError, match=r"--encoding='nonsense' is not a text encoding Python knows; expected a "
                                          r"codec name such as utf-8"):
        common.Options(encoding="nonsense")
    assert common.Options(encoding="latin-1").encoding == "latin-1"


def test_skip_bad_skips_and_counts_every_kind(tmp_path):
    np.savez(tmp_path / "audio.npz", d1_0=np.ones((1, 3)), d1_1=np.full((1, 3), np.nan), dia9=np.ones((1, 3)))
    bad = [{"dialogue": "d", "turn": 0, "speaker": "A", "text": "x", "labels": {"emotion": True}},
           {"dialogue": "e", "turn": 0, "speaker": "A", "text": ""},
           {"dialogue": "d1", "turn": 0, "speaker": "A", "text": "again"}, "not json"]
    manifest = _prepare(tmp_path, ROWS + bad, skip_bad=True, audio=str(tmp_path / "audio.npz"))
    assert manifest["report"]["skipped"] == {
        "bad audio feature array (modality left absent)": 1, "duplicated turn": 1, "empty text": 1,
        "feature array for an unknown utterance id": 1, "malformed row": 1, "bad label (label dropped)": 1}
    assert manifest["splits"]["train"]["utterances"] == 4  # the utterance whose label was dropped is kept
    d1 = _dialogues(tmp_path)[0]
    assert d1.audio[0].shape == (1, 3) and d1.audio[1] is None
    assert manifest["source"]["skip_bad"] is True


def test_a_failed_run_leaves_the_previous_output_untouched(tmp_path):
    _prepare(tmp_path)
    before = (tmp_path / "out" / records.MANIFEST).read_text()
    with pytest.raises(RecordError):
        _prepare(tmp_path, ROWS + [{"dialogue": "d", "turn": 0, "speaker": "A", "text": ""}])
    assert (tmp_path / "out" / records.MANIFEST).read_text() == before
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_config_tasks_the_corpus_does_not_label_are_one_config_error(tmp_path):
    from mmjax import configuration, prepared_records
    from tests.tiny import tiny_config
    _prepare(tmp_path)
    config = tiny_config(str(tmp_path / "out"))
    config.data.corpus = "jsonl"
    manifest = prepared_records.load_or_prepare(config)
    with pytest.raises(ConfigError, match=r"config.tasks names \['humor', 'sarcasm_humor'\], which the corpus at .* "
                                          r"does not declare \(it has \['sentiment', 'emotion', 'sarcasm', 'emotion_sentiment'\]\)"):
        configuration.check_tasks(config, manifest)
    config.tasks = ("sentiment", "sarcasm")
    config.task_weights = {"humor": 2.0, "hum0r": 2.0}  # a built-in task the corpus lacks is ignored
    with pytest.raises(ConfigError, match=r"config.task_weights names \['hum0r'\]"):
        configuration.check_tasks(config, manifest)
    config.task_weights = {"sarcasm": 2.0}
    configuration.check_tasks(config, manifest)


def test_text_states_of_a_checkpoint_are_cached_per_utterance(tmp_path, tiny_checkpoint):
    manifest = _prepare(tmp_path, tokenizer=tiny_checkpoint, text_states=text_states.Cache(tiny_checkpoint))
    assert manifest["text_states"]["dim"] == 32
    for d in _dialogues(tmp_path):
        assert [s.shape for s in d.text_states] == [(len(t), 32) for t in d.tokens]
        assert all(np.isfinite(s).all() and np.abs(s).max() > 0 for s in d.text_states)
    with pytest.raises(ConfigError, match="tokenised by .*word.*--tokenizer"):
        _prepare(tmp_path, text_states=text_states.Cache(tiny_checkpoint))  # a word vocabulary of the corpus, not the checkpoint's


EMORY = [  # a corpus with its own emotion classes (EmoryNLP's) and a task mmjax has never had
    {"dialogue": "s1", "turn": 0, "speaker": "Joey", "text": "how you doin", "labels": {"emotion": "Joyful", "act": "question"}},
    {"dialogue": "s1", "turn": 1, "speaker": "Ross", "text": "leave me alone", "labels": {"emotion": "Mad", "act": "statement"}},
    {"dialogue": "s2", "turn": 0, "speaker": "Rachel", "text": "it is fine", "labels": {"emotion": "Peaceful"}},
]


def test_a_corpus_declares_its_own_tasks_and_label_sets(tmp_path):
    _write(tmp_path / "corpus", [dict(EMORY[0], dialogue="v1")], "validation")
    manifest = _prepare(tmp_path, EMORY)
    assert manifest["tasks"] == {"emotion": {"kind": "classification", "labels": ["Joyful", "Mad", "Peaceful"]},
                                 "act": {"kind": "classification", "labels": ["question", "statement"]}}
    assert manifest["splits"]["train"]["class_counts"]["emotion"] == {"Joyful": 1, "Mad": 1, "Peaceful": 1}
    s1 = _dialogues(tmp_path)[0]
    assert s1.labels["emotion"].tolist() == [0, 1] and s1.labels["act"].tolist() == [0, 1]


def test_a_label_the_training_split_never_has_is_refused_or_dropped(tmp_path):
    _write(tmp_path / "corpus", [dict(EMORY[0], dialogue="v1", labels={"emotion": "Scared", "act": "question"})],
           "validation")
    with pytest.raises(RecordError, match=r"validation.jsonl line 1: labels.emotion 'Scared' is not one of the "
                                          r"task's labels \['Joyful', 'Mad', 'Peaceful'\] \(those of train.jsonl\)"):
        _prepare(tmp_path, EMORY)
    manifest = _prepare(tmp_path, EMORY, skip_bad=True)
    assert manifest["report"]["skipped"] == {"unknown label (label dropped)": 1}
    kept = _dialogues(tmp_path, "validation")[0]
    assert kept.labels["emotion"].tolist() == [-1] and kept.labels["act"].tolist() == [0]


def test_a_tasks_file_declares_the_tasks_and_their_relations(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tasks.json").write_text(json.dumps({
        "emotion": {"kind": "classification", "labels": ["Mad", "Joyful", "Peaceful", "Scared"]},
        "act": {"kind": "classification", "labels": ["statement", "question"]},
        "act_emotion": {"kind": "classification", "labels": ["-1", "0", "1"], "relates": ["act", "emotion"]}}))
    rows = [dict(EMORY[0], labels={"emotion": "Joyful", "act": "question", "act_emotion": 1})] + EMORY[1:]
    manifest = _prepare(tmp_path, rows)
    assert manifest["tasks"]["emotion"]["labels"] == ["Mad", "Joyful", "Peaceful", "Scared"]  # declared order
    assert manifest["tasks"]["act_emotion"]["relates"] == ["act", "emotion"]
    assert _dialogues(tmp_path)[0].labels["act_emotion"].tolist() == [2, -1]
    (corpus / "tasks.json").write_text(json.dumps({"emotion": {"kind": "ordinal", "labels": ["a", "b"]}}))
    with pytest.raises(RecordError, match=r"tasks.json: task 'emotion' is of kind 'ordinal'; expected one of "
                                          r"\['classification', 'regression', 'multilabel'\]"):
        _prepare(tmp_path, rows)
    (corpus / "tasks.json").write_text(json.dumps({"emotion": "classification"}))
    with pytest.raises(RecordError, match=r"tasks.json: task 'emotion' is declared as 'classification'; expected an "
                                          r"object such as \{\"kind\""):
        _prepare(tmp_path, rows)
    (corpus / "tasks.json").write_text(json.dumps({"emotion": {"kind": "regression", "range": [1, 1]}}))
    with pytest.raises(RecordError, match=r"tasks.json: task 'emotion' has range \[1, 1\]; expected \[low, high\]"):
        _prepare(tmp_path, rows)


KINDS = [  # one task of each kind, their kinds implied by the labels
    {"dialogue": "a", "turn": 0, "speaker": "A", "text": "so tired of work",
     "labels": {"mood": "low", "intensity": -1.5, "topics": ["work"]}},
    {"dialogue": "a", "turn": 1, "speaker": "B", "text": "dinner with family tonight",
     "labels": {"mood": "high", "intensity": 2, "topics": ["family", "food"]}},
    {"dialogue": "b", "turn": 0, "speaker": "A", "text": "nothing much", "labels": {"topics": []}},
]


def test_kinds_come_from_the_training_labels(tmp_path, caplog):
    manifest = _prepare(tmp_path, KINDS)
    assert "every training label is an integer" not in caplog.text  # -1.5 is not
    assert manifest["tasks"] == {"intensity": {"kind": "regression", "range": [-1.5, 2.0]},
                                 "mood": {"kind": "classification", "labels": ["high", "low"]},
                                 "topics": {"kind": "multilabel", "labels": ["family", "food", "work"]}}
    a, b = _dialogues(tmp_path)
    assert a.labels["intensity"].dtype == np.float32 and a.labels["intensity"].tolist() == [-1.5, 2.0]
    assert np.isnan(b.labels["intensity"]).all()  # unlabelled
    assert a.labels["topics"].tolist() == [[0, 0, 1], [1, 1, 0]] and b.labels["topics"].tolist() == [[0, 0, 0]]
    train = manifest["splits"]["train"]
    assert train["labelled"] == {"intensity": 2, "mood": 2, "topics": 3}
    assert train["class_counts"]["topics"] == {"family": 1, "food": 1, "work": 1}
    assert train["value_stats"]["intensity"] == {"mean": 0.25, "std": 1.75, "min": -1.5, "max": 2.0}


@pytest.mark.parametrize("label, message", [
    (3.5, r"labels.intensity 3.5 is outside the regression task's range \[-1.5, 2\] \(those of train.jsonl; a "
          r"tasks.json may declare a wider range\)"),
    ("x", r"labels.intensity 'x' is not a number in the regression task's range"),
])
def test_a_regression_value_outside_the_training_range_is_refused_or_dropped(tmp_path, label, message):
    _write(tmp_path / "corpus", [dict(KINDS[0], dialogue="v", labels={"intensity": label, "mood": "low"})], "test")
    with pytest.raises(RecordError, match=r"test.jsonl line 1: " + message):
        _prepare(tmp_path, KINDS)
    manifest = _prepare(tmp_path, KINDS, skip_bad=True)
    assert manifest["report"]["skipped"] == {"unknown label (label dropped)": 1}
    assert manifest["splits"]["test"]["labelled"] == {"intensity": 0, "mood": 1, "topics": 0}


def test_integer_labels_make_a_regression_task_and_say_so(tmp_path, caplog):
    rows = [dict(r, labels={"stars": i + 1}) for i, r in enumerate(KINDS)]
    assert _prepare(tmp_path, rows)["tasks"]["stars"] == {"kind": "regression", "range": [1.0, 3.0]}
    assert "task 'stars': every training label is an integer, so it is a regression task over [1, 3]" in caplog.text


def test_a_multilabel_label_the_training_split_never_has_is_refused(tmp_path):
    _write(tmp_path / "corpus", [dict(KINDS[0], dialogue="v", labels={"topics": ["work", "sport"]})], "validation")
    with pytest.raises(RecordError, match=r"validation.jsonl line 1: labels.topics \['work', 'sport'\] has labels "
                                          r"\['sport'\] that are not of the multi-label task's labels"):
        _prepare(tmp_path, KINDS)


def test_a_tasks_file_declares_regression_and_multilabel_tasks(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tasks.json").write_text(json.dumps({
        "intensity": {"kind": "regression", "range": [-3, 3]},
        "topics": {"kind": "multilabel", "labels": ["work", "family", "food", "sport"]},
        "mood": {"kind": "classification", "labels": ["low", "high"]}}))
    manifest = _prepare(tmp_path, KINDS)
    assert manifest["tasks"]["intensity"]["range"] == [-3.0, 3.0]
    assert _dialogues(tmp_path)[0].labels["topics"].tolist() == [[1, 0, 0, 0], [0, 1, 1, 0]]  # declared order
    assert manifest["splits"]["train"]["class_counts"]["topics"]["sport"] == 0
    _write(corpus, [dict(KINDS[0], dialogue="v", labels={"intensity": 4})], "test")
    with pytest.raises(RecordError, match=r"test.jsonl line 1: labels.intensity 4 is outside the regression task's "
                                          r"range \[-3, 3\] \(declared in [^;]*tasks.json\) \(pass --skip-bad"):
        _prepare(tmp_path, KINDS)


def test_without_validation_jsonl_a_seeded_fraction_of_training_dialogues_is_held_out(tmp_path):
    rows = [{"dialogue": f"d{i}", "turn": t, "speaker": "AB"[t], "text": f"line {i} {t}",
             "labels": {"sentiment": ["negative", "neutral", "positive"][(i + t) % 3]}}
            for i in range(20) for t in range(2)]
    manifest = _prepare(tmp_path, rows, validation_fraction=0.2)
    train, validation = _dialogues(tmp_path), _dialogues(tmp_path, "validation")
    assert len(train) == 16 and len(validation) == 4  # whole dialogues, none in both
    assert not {d.dialogue_id for d in train} & {d.dialogue_id for d in validation}
    assert {d.dialogue_id for d in train} | {d.dialogue_id for d in validation} == {f"d{i}" for i in range(20)}
    assert manifest["splits"]["validation"]["utterances"] == 8
    assert manifest["held_out_validation"] == {"fraction": 0.2, "seed": 0,
                                               "dialogues": [d.dialogue_id for d in validation]}
    again, one, bad = (tmp_path / name for name in ("again", "one", "bad"))
    for directory in (again, one, bad):
        directory.mkdir()
    _prepare(again, rows, validation_fraction=0.2)
    assert [d.dialogue_id for d in _dialogues(again, "validation")] == [d.dialogue_id for d in validation]  # seeded
    with pytest.raises(RecordError, match=r"train.jsonl: holds 1 dialogue\(s\) and there is no validation.jsonl"):
        _prepare(one, rows[:2], validation_fraction=0.2)
    for fraction in (1.5, -0.1):
        with pytest.raises(ConfigError, match=rf"--validation_fraction={fraction}: expected a value in \[0, 1\)"):
            _prepare(bad, rows, validation_fraction=fraction)


def test_a_feature_file_of_the_wrong_dimension_names_the_file_and_the_line_naming_it(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "a.npy", np.ones((2, 3), np.float32))
    np.save(corpus / "b.npy", np.ones((2, 4), np.float32))
    rows = [dict(ROWS[0], audio="b.npy"), dict(ROWS[1], audio="a.npy"), ROWS[2]]  # line 2 is turn 0, read first
    with pytest.raises(RecordError, match=r"b.npy \(named at .*train.jsonl line 1\): audio features have dimension 4, "
                                          r"expected 3 \(the dimension of .*a.npy \(named at .*train.jsonl line 2\)\)"):
        _prepare(tmp_path, rows)


def test_a_dialogue_id_in_two_splits_is_kept_apart_with_a_warning(tmp_path, caplog):
    _write(tmp_path / "corpus", [dict(ROWS[0], id="t1"), dict(ROWS[1], id="t0")], "test")  # dialogue d1 again
    with caplog.at_level("WARNING"):
        _prepare(tmp_path)
    assert "dialogue ids ['d1'] are in both train and test: kept as different dialogues" in caplog.text
    with records.reading_test_split():
        assert [d.dialogue_id for d in _dialogues(tmp_path, "test")] == ["d1"]
