"""MUStARD on a hand-made JSON: records (context + target), text repairs, both split protocols."""

import json

import pytest

from mmjax.data import records
from mmjax.data.corpora import common, conversion, mustard
from mmjax.errors import ConfigError, RecordError

SHOWS = ["FRIENDS", "BBT", "GOLDENGIRLS"]


def _records(n=60):
    return {f"1_{i}": {"utterance": f"line {i}", "speaker": "SHELDON", "context": [f"before {i}", "IÕm here"][:i % 3],
                       "context_speakers": ["LEONARD", "PENNY"][:i % 3], "show": SHOWS[i % 3], "sarcasm": i % 2 == 0}
            for i in range(n)}


def _prepare(tmp_path, data=None, text=None, **options):
    path = tmp_path / "sarcasm_data.json"
    path.write_text(text if text is not None else json.dumps(data or _records()), encoding="utf-8")
    return conversion.convert(mustard, str(path), str(tmp_path / "out"), common.Options(**options), tokenizer="word")


def test_a_record_is_context_then_the_labelled_target(tmp_path):
    manifest = _prepare(tmp_path)
    with records.reading_test_split():  # a converter test, not training
        source = records.DialogueSource(str(tmp_path / "out"), "test")
    target = next(source[i] for i in range(len(source)) if source[i].dialogue_id == "1_3")  # FRIENDS, 0 context turns
    assert target.utterance_ids == ["1_3"]
    source = records.DialogueSource(str(tmp_path / "out"), "train")
    d = next(source[i] for i in range(len(source)) if source[i].num_turns == 3)
    key = d.dialogue_id
    assert d.utterance_ids == [f"{key}_c0", f"{key}_c1", key] and d.speakers == ["LEONARD", "PENNY", "SHELDON"]
    assert d.texts[1] == "I'm here"  # mojibake repaired
    assert d.labels["sarcasm"][:2].tolist() == [-1, -1] and d.labels["sarcasm"][2] == (int(key.split("_")[1]) % 2 == 0)
    assert d.info == {"show": SHOWS[int(key.split("_")[1]) % 3]}
    assert manifest["report"]["rules_applied"] == {"mojibake 'Õ' read as \"'\"": 20}


def test_speaker_independent_holds_out_friends(tmp_path):
    manifest = _prepare(tmp_path, validation_fraction=0.25, seed=3)
    protocol = manifest["protocol"]
    assert protocol["name"] == "speaker_independent" and protocol["test_show"] == "FRIENDS"
    assert manifest["splits"]["test"]["dialogues"] == 20
    validation = manifest["splits"]["validation"]["class_counts"]["sarcasm"]
    assert validation == {"none": 5, "sarcastic": 5}  # a quarter of each class of the other 40
    assert len(protocol["validation_ids"]) == 10 and manifest["splits"]["train"]["dialogues"] == 30
    again = _prepare(tmp_path, validation_fraction=0.25, seed=3)["protocol"]["validation_ids"]
    assert again == protocol["validation_ids"]


def test_speaker_dependent_folds_are_seeded_stratified_and_recorded(tmp_path):
    manifests = [_prepare(tmp_path, protocol="speaker_dependent", fold=k, seed=1) for k in (0, 4)]
    fold_of = manifests[0]["protocol"]["fold_of"]
    assert fold_of == manifests[1]["protocol"]["fold_of"] and sorted(set(fold_of.values())) == [0, 1, 2, 3, 4]
    labels = {k: v["sarcasm"] for k, v in _records().items()}
    for k in range(5):
        members = [i for i, f in fold_of.items() if f == k]
        assert len(members) == 12 and sum(labels[i] for i in members) == 6  # 6 of each class per fold
    for manifest, k in zip(manifests, (0, 4)):
        assert manifest["protocol"]["fold"] == k and manifest["splits"]["test"]["dialogues"] == 12
        assert not set(manifest["protocol"]["validation_ids"]) & {i for i, f in fold_of.items() if f == k}
        assert sum(manifest["splits"][s]["dialogues"] for s in ("train", "validation", "test")) == 60
    other_seed = mustard.stratified_folds(list(labels), labels, 5, seed=2)
    assert other_seed != fold_of


@pytest.mark.parametrize("options,message", [
    ({"protocol": "random"}, r"--protocol='random' is not one of \['speaker_independent', 'speaker_dependent'\]"),
    ({"protocol": "speaker_dependent", "fold": 5}, r"--fold=5: expected a fold in \[0, 5\)"),
])
def test_bad_protocol_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        _prepare(tmp_path, **options)


def test_bad_records_name_the_record_and_the_expectation(tmp_path):
    text = json.dumps(_records(3))[:-1] + ', "1_0": {"utterance": "dup"}}'
    with pytest.raises(RecordError, match=r"sarcasm_data.json record '1_0': target id '1_0' appears twice"):
        _prepare(tmp_path, text=text)
    data = _records(6)
    data["1_1"]["sarcasm"] = "yes"
    with pytest.raises(RecordError, match=r"record '1_1': sarcasm 'yes' is not a label; expected true or false"):
        _prepare(tmp_path, data)
    del data["1_2"]["context_speakers"]
    manifest = _prepare(tmp_path, data, skip_bad=True)
    assert manifest["report"]["skipped"] == {"malformed row": 1, "unknown label": 1}
    with pytest.raises(RecordError, match=r"sarcasm_data.json line 1: not valid JSON"):
        _prepare(tmp_path, text="{")
