"""MELD on hand-made CSVs: ids, dialogue order, labels; bad rows and a wrong encoding are one error."""

import pytest

from mmjax.data import records
from mmjax.data.corpora import common, conversion, meld
from mmjax.errors import RecordError

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def _row(dialogue, utterance, text, speaker="Ross", emotion="neutral", sentiment="neutral"):
    return f'1,"{text}",{speaker},{emotion},{sentiment},{dialogue},{utterance},3,7,"00:00:01,000","00:00:02,000"'


TRAIN = [HEADER, _row(1, 0, "Hi, there."), _row(0, 2, "It’s late", "Rachel", "sadness", "negative"),
         _row(0, 0, "Where were you?", "Monica", "anger", "negative")]


def _prepare(tmp_path, train=TRAIN, options=common.Options(), encoding="utf-8"):
    directory = tmp_path / "meld"
    directory.mkdir(exist_ok=True)
    for name, lines in {"train_sent_emo.csv": train, "dev_sent_emo.csv": [HEADER, _row(0, 0, "Dev")],
                        "test_sent_emo.csv": [HEADER, _row(0, 0, "Test", emotion="joy", sentiment="positive")]}.items():
        (directory / name).write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return conversion.convert(meld, str(directory), str(tmp_path / "out"), options, tokenizer="word")


def test_ids_order_labels_and_info(tmp_path):
    manifest = _prepare(tmp_path)
    assert list(manifest["tasks"]) == ["sentiment", "emotion"]
    d0, d1 = (records.DialogueSource(str(tmp_path / "out"), "train")[i] for i in range(2))
    assert d0.dialogue_id == "train/dia0" and d0.utterance_ids == ["train/dia0_utt0", "train/dia0_utt2"]
    assert d0.texts == ["Where were you?", "It’s late"] and d0.speakers == ["Monica", "Rachel"]
    assert d0.labels["emotion"].tolist() == [3, 4] and d0.labels["sentiment"].tolist() == [0, 0]
    assert d0.info == {"season": "3", "episode": "7"} and d1.texts == ["Hi, there."]
    assert records.DialogueSource(str(tmp_path / "out"), "validation")[0].utterance_ids == ["dev/dia0_utt0"]
    assert manifest["splits"]["test"]["class_counts"]["emotion"]["joy"] == 1


@pytest.mark.parametrize("row,message", [
    (_row(2, 0, "x", emotion="happiness"), r"train_sent_emo.csv line 5: Emotion 'happiness' is not a label; expected one of"),
    (_row(2, "a", "x"), r"train_sent_emo.csv line 5: Dialogue_ID '2', Utterance_ID 'a': expected non-negative integers"),
    (_row(0, 2, "again"), r"line 5: utterance id 'train/dia0_utt2' is already used at .*train_sent_emo.csv line 3"),
])
def test_a_bad_row_is_one_error_naming_file_line_and_expectation(tmp_path, row, message):
    with pytest.raises(RecordError, match=message):
        _prepare(tmp_path, TRAIN + [row])
    manifest = _prepare(tmp_path, TRAIN + [row], common.Options(skip_bad=True))
    label_only = "is not a label" in message  # the label is dropped, the utterance kept as context
    assert sum(manifest["report"]["skipped"].values()) == 1
    assert manifest["splits"]["train"]["utterances"] == (4 if label_only else 3)


def test_a_windows_1252_file_names_the_line_and_utf8(tmp_path):
    with pytest.raises(RecordError, match=r"train_sent_emo.csv line 3: byte 0x92 is not valid utf-8; expected a utf-8 file"):
        _prepare(tmp_path, encoding="cp1252")
    manifest = _prepare(tmp_path, encoding="cp1252", options=common.Options(skip_bad=True))
    assert manifest["report"]["skipped"] == {"undecodable line": 1} and manifest["splits"]["train"]["utterances"] == 2
