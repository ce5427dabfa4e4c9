"""The prepare command line: a summary table on success; bad input is one line and exit code 2,
leaving no output behind."""

import json
import os

from tests.tiny import run_module, run_on_a_small_disk

ROWS = [{"dialogue": "d1", "turn": 0, "speaker": "A", "text": "so what", "labels": {"sarcasm": "none"}},
        {"dialogue": "d1", "turn": 1, "speaker": "B", "text": "oh great", "labels": {"sarcasm": "sarcastic"}}]
UNSEEN = {"dialogue": "d2", "turn": 0, "speaker": "A", "text": "x", "labels": {"sarcasm": "yes"}}


def test_prepare_prints_the_summary_or_one_error_line(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    (corpus / "validation.jsonl").write_text(json.dumps(UNSEEN))
    args = ("mmjax.prepare", "--corpus=jsonl", f"--input={corpus}", f"--output={tmp_path}/out", "--tokenizer=word",
            "--name=my_corpus")
    code, out = run_module(*args)
    assert code == 2 and "Traceback" not in out
    assert f"mmjax.prepare: error: {corpus}/validation.jsonl line 1: labels.sarcasm 'yes' is not one of the task's " \
           "labels ['none', 'sarcastic'] (those of train.jsonl) (pass --skip-bad" in out
    assert not os.path.exists(tmp_path / "out")
    code, out = run_module(*args, "--skip-bad", "--max_tokens=1")
    assert code == 0, out
    assert "--config.data.max_tokens=1 would cut:" in out and "cut: 2 of 2" in out  # both have 2+ tokens
    assert "\r" not in out  # no progress bar in a redirected log
    assert "corpus my_corpus" in out and "sarcasm / sarcastic" in out
    assert "skipped (--skip-bad):\n         1  unknown label (label dropped)" in out
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["corpus"] == "my_corpus"


def test_synthetic_takes_the_tokenizer_flag(tmp_path):
    args = ("mmjax.prepare", "--corpus=synthetic", "--dialogues=train:4,validation:2,test:2", f"--output={tmp_path}/out")
    code, out = run_module(*args, "--tokenizer=minilm")
    assert code == 0, out
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["text"]["kind"] == "huggingface"
    code, out = run_module(*args, "--tokenizer=word")
    assert code == 2 and "Traceback" not in out
    assert "mmjax.prepare: error: --tokenizer=word builds a vocabulary of a converted corpus" in out


def test_a_full_disk_is_one_line_and_leaves_the_previous_records(tmp_path):
    disk = str(tmp_path / "disk")
    code, out = run_on_a_small_disk(disk, "1m", f"""
mkdir {disk}/records && echo kept > {disk}/records/manifest.json
$PY -m mmjax.prepare --corpus=synthetic --output={disk}/records --dialogues=train:400,validation:50,test:50
echo "exit=$?"; ls -A {disk}; cat {disk}/records/manifest.json""")
    assert code == 0, out
    assert "exit=2" in out and "Traceback" not in out, out
    assert (f"mmjax.prepare: error: no space left on the device of '{disk}/records' while writing the records; "
            "the partial copy was removed and the records there before are unchanged") in out
    assert "exit=2\nrecords\nkept\n" in out  # no partial directory beside them
