import json
import os

import numpy as np
import pytest

from mmjax.data import records, schema
from mmjax.data.corpora import synthetic
from mmjax.errors import MmjaxError, RecordError
from mmjax.tasks import TASKS

DIMS = (synthetic.AUDIO_DIM, synthetic.VISUAL_DIM)


def _assert_same(a: schema.Dialogue, b: schema.Dialogue):
    assert (a.dialogue_id, a.utterance_ids, a.speakers, a.texts) == (b.dialogue_id, b.utterance_ids, b.speakers, b.texts)
    for x, y in zip(a.tokens, b.tokens):
        np.testing.assert_array_equal(x, y)
    for modality in ("audio", "visual"):
        for x, y in zip(getattr(a, modality), getattr(b, modality)):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)
    assert a.labels.keys() == b.labels.keys()
    for task in a.labels:
        np.testing.assert_array_equal(a.labels[task], b.labels[task])


def test_serialize_round_trip_keeps_absent_modalities():
    dialogues = synthetic.generate("train", 30, seed=0)
    assert any(f is None for d in dialogues for f in d.audio)
    for d in dialogues:
        _assert_same(d, schema.deserialize(schema.serialize(d, *DIMS)))


def test_cached_text_states_round_trip_as_float16_and_are_checked():
    dialogue = synthetic.generate("train", 1, seed=0)[0]
    rng = np.random.default_rng(0)
    dialogue.text_states = [rng.normal(size=(len(t), 8)).astype(np.float16) for t in dialogue.tokens]
    dialogue.validate(*DIMS, text_states_dim=8)
    back = schema.deserialize(schema.serialize(dialogue, *DIMS))
    _assert_same(dialogue, back)
    for x, y in zip(dialogue.text_states, back.text_states):
        assert y.dtype == np.float16
        np.testing.assert_array_equal(x, y)
    assert schema.deserialize(schema.serialize(synthetic.generate("train", 1, seed=0)[0], *DIMS)).text_states is None
    with pytest.raises(RecordError, match=r"text states have shape .*, expected \(\d+, 16\)"):
        dialogue.validate(*DIMS, text_states_dim=16)
    full = dialogue.text_states
    dialogue.text_states = [s[:-1] for s in full]  # one state short of the tokens
    with pytest.raises(RecordError, match="one state per token"):
        dialogue.validate(*DIMS, text_states_dim=8)
    dialogue.text_states = [np.full_like(s, np.inf) for s in full]
    with pytest.raises(RecordError, match="text states contain NaN or inf"):
        dialogue.validate(*DIMS, text_states_dim=8)
    dialogue.text_states = full
    with pytest.raises(RecordError, match="text states unexpected"):
        dialogue.validate(*DIMS)
    dialogue.text_states = None
    with pytest.raises(RecordError, match="text states missing"):
        dialogue.validate(*DIMS, text_states_dim=8)


def test_records_hold_only_numeric_arrays():
    data = bytearray(schema.serialize(synthetic.generate("train", 1, seed=0)[0], *DIMS))
    with pytest.raises(RecordError, match="not an mmjax record"):
        schema.deserialize(b"PK\x03\x04" + bytes(data[4:]))
    header = bytes(data).replace(b'"<i4"', b'"|O8"', 1)  # an object (pickle) array is refused
    with pytest.raises(RecordError, match=r"dtype object; only numeric arrays are allowed"):
        schema.deserialize(header)


def test_written_corpus_reads_back(records_dir):
    manifest = records.load_manifest(records_dir)
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["features"] == {"audio_dim": synthetic.AUDIO_DIM, "visual_dim": synthetic.VISUAL_DIM}
    source = records.DialogueSource(records_dir, "validation")
    expected = synthetic.generate("validation", 12, seed=0)
    assert len(source) == 12
    for i, d in enumerate(expected):
        _assert_same(d, source[i])
    info = manifest["splits"]["validation"]
    assert info["utterances"] == sum(d.num_turns for d in expected)
    sarcastic = sum(int(d.labels["sarcasm"].sum()) for d in expected)
    assert info["class_counts"]["sarcasm"]["sarcastic"] == sarcastic


def test_other_schema_version_is_refused(tmp_path):
    path = str(tmp_path / "old")
    synthetic.write(path, {"train": 2}, seed=0)
    manifest_path = os.path.join(path, records.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["schema_version"] = 0
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(RecordError, match=r"manifest.json: records were written with schema version 0"):
        records.load_manifest(path)


def test_failed_write_leaves_nothing(tmp_path):
    good = synthetic.generate("train", 3, seed=0)
    bad = synthetic.generate("train", 1, seed=1)[0]
    bad.audio[0] = np.full((4, synthetic.AUDIO_DIM), np.nan, np.float32)
    with pytest.raises(RecordError, match=r"dialogue 'train_00000', utterance 'train_00000_u0': audio features contain NaN"):
        records.write_corpus(str(tmp_path / "out"), "synthetic", {"train": good + [bad]}, tasks=[TASKS["sarcasm"]],
                             audio_dim=synthetic.AUDIO_DIM, visual_dim=synthetic.VISUAL_DIM, text={"vocab_size": 3})
    assert os.listdir(tmp_path) == []


def test_writing_records_never_replaces_a_directory_holding_anything_else(tmp_path):
    kept = tmp_path / "workdir"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(MmjaxError, match=r"records directory .*workdir' holds files that are not prepared records "
                                         r"\('notes.txt'\); preparing replaces the whole directory"):
        synthetic.write(str(kept), {"train": 2}, seed=0)
    assert os.listdir(kept) == ["notes.txt"] and sorted(os.listdir(tmp_path)) == ["workdir"]
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    with pytest.raises(MmjaxError, match="exists and is not a directory"):
        synthetic.write(str(a_file), {"train": 2}, seed=0)
    # Records prepare wrote, and an empty directory, are replaced.
    records_dir = str(tmp_path / "records")
    synthetic.write(records_dir, {"train": 2}, seed=0)
    assert synthetic.write(records_dir, {"train": 3}, seed=0)["splits"]["train"]["dialogues"] == 3
    (tmp_path / "empty").mkdir()
    synthetic.write(str(tmp_path / "empty"), {"train": 2}, seed=0)
    (tmp_path / "records" / ".DS_Store").write_text("")  # file systems' own artefacts do not count
    assert records.replace_problem(records_dir) is None
    (tmp_path / "link").symlink_to(records_dir, target_is_directory=True)
    with pytest.raises(MmjaxError, match="is a symbolic link; give the directory it points to"):
        synthetic.write(str(tmp_path / "link"), {"train": 2}, seed=0)


def test_prepare_refuses_the_output_before_converting(tmp_path):
    from mmjax import preparation

    (tmp_path / "notes.txt").write_text("mine")
    # The input does not exist either: the output is checked first, before any conversion.
    with pytest.raises(MmjaxError, match=r"records directory .* holds files that are not prepared records"):
        preparation.prepare("cmma", str(tmp_path), input_path=str(tmp_path / "no_such_corpus"))


def test_missing_corpus_names_the_directory(tmp_path):
    with pytest.raises(RecordError, match="no prepared corpus at .*mmjax.prepare"):
        records.load_manifest(str(tmp_path))


def _edit_manifest(path: str, edit) -> None:
    manifest_path = os.path.join(path, records.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    edit(manifest)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("shard", ["../../../../etc/hostname", "/etc/hostname", "..", "sub/train.array_record"])
def test_a_manifest_naming_a_shard_outside_its_directory_is_refused(tmp_path, shard):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 2}, seed=0)
    _edit_manifest(path, lambda m: m["splits"]["train"].__setitem__("shards", [shard]))
    with pytest.raises(RecordError, match=f"names the shard {shard!r}; shards are plain file names inside"):
        records.load_manifest(path)


def test_a_manifest_counting_other_dialogues_than_its_shards_hold_is_refused(tmp_path):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 3}, seed=0)
    _edit_manifest(path, lambda m: m["splits"]["train"].__setitem__("dialogues", 5))
    with pytest.raises(RecordError, match="the manifest counts 5 train dialogues but its shards hold 3"):
        records.DialogueSource(path, "train")


def test_a_truncated_shard_is_one_error_naming_it(tmp_path):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 3}, seed=0)
    shard = os.path.join(path, records.load_manifest(path)["splits"]["train"]["shards"][0])
    with open(shard, "rb") as f:
        data = f.read()
    with open(shard, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(RecordError, match=f"{shard}: not a readable ArrayRecord shard"):
        records.DialogueSource(path, "train")


def _one_shard(path: str, split: str = "train") -> str:
    return os.path.join(path, records.load_manifest(path)["splits"][split]["shards"][0])


def test_a_record_damaged_inside_a_readable_shard_is_named(tmp_path):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 5}, seed=0)
    shard = _one_shard(path)
    with open(shard, "r+b") as f:  # a byte of the second record; the shard's index stays intact
        f.seek(10_000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    source = records.DialogueSource(path, "train")  # opens: its first and last records are sound
    with pytest.raises(RecordError, match=rf"{shard}: record 1 is damaged \(Corrupted .+\); re-run"):
        source[1]


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["features"].__setitem__("audio_dim", 7), "has audio features of dim 24; the manifest says 7"),
    (lambda m: m["tasks"].__setitem__("emotion", {"kind": "classification", "labels": ["a", "b"]}),
     "has emotion labels outside -1..1"),
])
def test_a_manifest_that_disagrees_with_its_records_is_refused_when_opened(tmp_path, edit, message):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 3}, seed=0)
    _edit_manifest(path, edit)
    with pytest.raises(RecordError, match=rf"{_one_shard(path)}: record \d \(dialogue .*\) {message}"):
        records.DialogueSource(path, "train")


def test_a_wrong_turns_index_is_refused(tmp_path):
    path = str(tmp_path / "records")
    synthetic.write(path, {"train": 3}, seed=0)
    index = os.path.join(path, "train.turns.npy")
    turns = np.load(index)
    np.save(index, turns[::-1] + 1)
    with pytest.raises(RecordError, match=r"record 0 \(dialogue .*\) has \d+ utterances; the turns index says"):
        records.DialogueSource(path, "train")
