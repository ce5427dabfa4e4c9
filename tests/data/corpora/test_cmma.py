"""CMMA: every quirk of the published files is handled by its documented rule, on hand-made
GB18030 files; bad rows are one error naming file, line and the expected value."""

import pytest

from mmjax.data import records
from mmjax.data.corpora import cmma, common, conversion
from mmjax.errors import RecordError

HEADER = ("ConversationID,UtteranceID,Utterance,Speaker,StartTime,EndTime,Emotion,Sentiment,Sarcasm,Humor,"
          "Relevancy(Emo→Sen),Relevancy(Sar→Hum),Pride,Love")
BLANK = "," * 13


def _row(conversation, utterance, text, speaker="张伟", emotion="neutral", sentiment="neutral", sarcasm="none",
         humor="none", emo_sen="2", sar_hum="0", pride="none", love="none"):
    return (f'{conversation},{utterance},{text},{speaker},"00:00:00,000","00:00:01,000",{emotion},{sentiment},'
            f"{sarcasm},{humor},{emo_sen},{sar_hum},{pride},{love}")


TRAIN = [HEADER,
         _row("C_2", "C_2_U_1", "你好", "胡一菲", "joy", "positive"),
         _row("C_1", "C_1_U_2", "第二句", sar_hum="0.5", love="emptylove"),
         _row("C_1", "C_1_U_", "没编号", sarcasm="sarcastic", sar_hum="-1"),
         _row("C_1", "C_1_U_1", "第一句", "胡一菲", "anger", "negative", emo_sen="-2", pride="pride"),
         BLANK, BLANK]
DEV = [HEADER, _row("C_3", "C_3_U_1", "开发集", humor="humor", sar_hum="1")]
TEST = [HEADER.replace("ConversationID", "CoversationID"), _row("C_4", "C_4_U_1", "测试", emotion="digust",
                                                                 sentiment="negative", love="empty")]
TOPICS = ["ConversationID,TopicDescription", "C_1, 两人聊天 ", "C_2,打招呼"]
ROLES = ["Speaker,Gender,Profession,Personality,Age（少年、青年、中年、老年）", "胡一菲,女,老师,强势,青年",
         "张伟,男,律师,胆小,青年", "张伟 ,男,厨师,另一个,中年"]


def _corpus(tmp_path, train=TRAIN, encoding="gb18030", tables=True):
    directory = tmp_path / "cmma"
    directory.mkdir(exist_ok=True)
    files = {"train.csv": train, "dev.csv": DEV, "test.csv": TEST}
    if tables:
        files.update({cmma.TOPIC_FILE: TOPICS, cmma.ROLE_FILE: ROLES})
    for name, lines in files.items():
        (directory / name).write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")
    return str(directory)


def _prepare(tmp_path, options=common.Options(), **kwargs):
    return conversion.convert(cmma, _corpus(tmp_path, **kwargs), str(tmp_path / "out"), options)


def test_quirk_rules_order_and_side_tables(tmp_path):
    manifest = _prepare(tmp_path)
    assert list(manifest["tasks"]) == ["sentiment", "emotion", "sarcasm", "humor", "emotion_sentiment", "sarcasm_humor"]
    source = records.DialogueSource(str(tmp_path / "out"), "train")
    c1, c2 = source[0], source[1]
    # conversations by number, turns by utterance number; the unnumbered id keeps its file place
    assert [c1.dialogue_id, c2.dialogue_id] == ["C_1", "C_2"]
    assert c1.utterance_ids == ["C_1_U_1", "C_1_U_2", "C_1_U_"]
    assert c1.speakers == ["胡一菲", "张伟", "张伟"] and c1.texts[0] == "第一句"
    assert c1.labels["emotion"].tolist() == [3, 0, 0] and c1.labels["sentiment"].tolist() == [0, 1, 1]
    assert c1.labels["emotion_sentiment"].tolist() == [0, 4, 4]
    assert c1.labels["sarcasm_humor"].tolist() == [2, -1, 1]  # 0.5 lies between scale points: unlabelled
    assert c1.labels["love"].tolist() == [0, 3, 0] and c1.labels["pride"].tolist() == [1, 0, 0]
    assert c1.info == {"topic": "两人聊天"}
    with records.reading_test_split():  # a converter test, not training
        test = records.DialogueSource(str(tmp_path / "out"), "test")[0]
    assert test.labels["emotion"].tolist() == [5]  # 'digust'
    assert manifest["report"]["rules_applied"] == {
        "CMMA-RoleIntroduction.csv: repeated Speaker entry dropped (first kept)": 1,
        "Emotion 'digust' read as 'disgust'": 1, "Love 'emptylove' read as 'empty'": 1,
        "Relevancy(Sar→Hum) '0.5' between scale points: unlabelled": 1,
        "UtteranceID without a turn number: kept at its file position": 1,
        "test.csv header 'CoversationID' read as 'ConversationID'": 1,
        "train.csv: completely blank rows dropped": 2}
    assert manifest["cmma"]["roles"]["张伟"] == {"gender": "男", "profession": "律师", "personality": "胆小", "age": "青年"}
    assert manifest["auxiliary_labels"]["love"]["class_counts"]["train"] == {"none": 3, "growing": 0, "immediate": 0, "empty": 1}
    assert manifest["text"]["kind"] == "vocabulary" and "测" not in manifest["text"]["vocab"]  # train characters only
    assert manifest["splits"]["validation"]["dialogues"] == 1


def test_side_tables_are_optional(tmp_path):
    manifest = _prepare(tmp_path, tables=False)
    assert manifest["cmma"]["roles"] == {} and manifest["cmma"]["dialogues_with_topic"] == 0


@pytest.mark.parametrize("bad_row,message", [
    (_row("C_9", "C_9_U_1", "句子", emotion="happy"),
     r"train.csv line 8: Emotion 'happy' is not a label; expected one of \['neutral', 'joy', 'surprise'"),
    (_row("C_9", "C_9_U_1", "句子", sar_hum="3"),
     r"train.csv line 8: Relevancy\(Sar→Hum\) '3' is not a label; expected one of \['-2', '-1', '0', '1', '2'\]"),
    (_row("C_9", "C_8_U_1", "句子"), r"train.csv line 8: UtteranceID 'C_8_U_1' of conversation 'C_9': expected 'C_9_U_<turn number>'"),
    (_row("C_9", "C_1_U_1", "句子").replace("C_9,", "C_1,", 1), r"train.csv line 8: utterance id 'C_1_U_1' is already used at .*train.csv line 5"),
    (_row("C_9", "C_9_U_1", ""), r"train.csv line 8: utterance 'C_9_U_1' has empty text"),
    ("C_9,C_9_U_1,句子", r"train.csv line 8: has 3 fields, expected 14 \(the header's\)"),
])
def test_a_bad_row_is_one_error_naming_file_line_and_expectation(tmp_path, bad_row, message):
    with pytest.raises(RecordError, match=message):
        _prepare(tmp_path, train=TRAIN + [bad_row])
    manifest = _prepare(tmp_path, common.Options(skip_bad=True), train=TRAIN + [bad_row])
    label_only = "is not a label" in message  # the label is dropped, the utterance kept as context
    assert sum(manifest["report"]["skipped"].values()) == 1
    assert manifest["splits"]["train"]["utterances"] == (5 if label_only else 4)


def test_a_missing_column_names_the_file_and_the_expected_columns(tmp_path):
    train = [TRAIN[0].replace(",Sentiment", "")] + [r.replace(",neutral,", ",", 1) for r in TRAIN[1:2]]
    with pytest.raises(RecordError, match=r"train.csv line 1: the header lacks column\(s\) \['Sentiment'\]; expected columns"):
        _prepare(tmp_path, train=train)


def test_a_utf8_copy_is_refused_unless_its_encoding_is_given(tmp_path):
    with pytest.raises(RecordError, match=r"TopicDescription.csv: the file is UTF-8-encoded, expected gb18030 .* --encoding=utf-8"):
        _prepare(tmp_path, encoding="utf-8")
    manifest = _prepare(tmp_path, common.Options(encoding="utf-8"), encoding="utf-8")
    assert manifest["splits"]["train"]["utterances"] == 4
