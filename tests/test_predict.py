import json
import os

import jax
import numpy as np
import pytest

from mmjax import errors, inputs, prediction, setup as setup_lib, sharding
from mmjax.data import arrays, dialogue_jsonl, records, text
from tests.tiny import run_module


def _export(dialogues, directory) -> str:
    """Writes ``dialogues`` as prediction input in the training JSONL format, one utterance a
    line, plus one .npy per utterance and modality. Odd dialogues are written last turn first
    (the reader orders by turn); some lines carry labels, which prediction ignores."""
    lines = []
    for k, d in enumerate(dialogues):
        turns = []
        for i in range(d.num_turns):
            u = {"dialogue": d.dialogue_id, "turn": i, "speaker": d.speakers[i], "text": d.texts[i]}
            if i % 2:  # the others get the default id, <dialogue>_<turn>
                u["id"] = d.utterance_ids[i]
            if i % 3 == 0:
                u["labels"] = {"sentiment": "positive", "emotion": None}
            for modality in ("audio", "visual"):
                features = getattr(d, modality)[i]
                if features is not None:
                    u[modality] = f"{d.dialogue_id}_{i}_{modality}.npy"
                    np.save(os.path.join(directory, u[modality]), features)
            turns.append(json.dumps(u))
        lines += turns[::-1] if k % 2 else turns
    path = os.path.join(directory, "dialogues.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_predictions_equal_the_evaluation_forward_with_its_context_windows(trained_run, tmp_path):
    config, workdir, state = trained_run
    source = records.DialogueSource(config.data.dir, "validation")
    dialogues = [source[i] for i in range(len(source))]
    output = str(tmp_path / "preds.jsonl")
    count = prediction.predict(workdir, _export(dialogues, str(tmp_path)), output, progress=False)
    with open(output) as f:
        lines = [json.loads(line) for line in f]
    assert count == len(lines) == sum(d.num_turns for d in dialogues)
    assert [(x["dialogue_id"], x["utterance_index"]) for x in lines] == [
        (d.dialogue_id, i) for d in dialogues for i in range(d.num_turns)]
    assert [x["utterance_id"] for x in lines] == [
        d.utterance_ids[i] if i % 2 else f"{d.dialogue_id}_{i}" for d in dialogues for i in range(d.num_turns)]

    # The same parameters over the evaluation pipeline's windows of the records (what training sees).
    s = setup_lib.build(config)
    step = setup_lib.jit_predict_step(s)
    expected = {}
    with sharding.activate(s.mesh, s.rules):
        for batch in inputs.eval_batches(config, s.manifest, "validation", 0, 1):
            out = jax.device_get(step(state.eval_params(), sharding.global_batch(batch, s.mesh)))
            rows = out["position"][..., 0] >= 0
            for task in config.tasks:
                for (d, t), p in zip(out["position"][rows].tolist(), out[task][rows]):
                    expected[dialogues[d].dialogue_id, t, task] = p
    assert not os.path.exists(output + ".tmp")
    for line in lines:
        for task in config.tasks:
            want = expected[line["dialogue_id"], line["utterance_index"], task]
            got = line[task]["probabilities"]
            np.testing.assert_allclose(list(got.values()), want, atol=2e-6)
            assert line[task]["label"] == max(got, key=got.get)
            assert sum(got.values()) == pytest.approx(1.0, abs=1e-5)


def _input(tmp_path, second_line: str) -> str:
    path = tmp_path / "input.jsonl"
    if not path.exists():
        np.save(tmp_path / "nan.npy", np.full((3, 24), np.nan, np.float32))
        np.save(tmp_path / "narrow.npy", np.zeros((3, 5), np.float32))
        _claiming(tmp_path / "huge.npy", (60_000_000, 1024))
        os.mkfifo(tmp_path / "fifo.npy")
        outside = tmp_path.parent / f"{tmp_path.name}_outside.npy"
        np.save(outside, np.zeros((3, 24), np.float32))
        os.symlink(outside, tmp_path / "link.npy")
    good = {"dialogue": "d1", "turn": 0, "speaker": "A", "text": "good_1 word_2"}
    path.write_text(json.dumps(good) + "\n" + second_line + "\n")
    return str(path)


def _claiming(path, shape) -> None:
    """A .npy file whose header claims ``shape`` float32 but which holds one row."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(np.zeros(shape[1:], np.float32).tobytes())


def _utterances(**utterance) -> str:
    return json.dumps({"dialogue": "d2", "turn": 0, "speaker": "B", "text": "hi", **utterance})


@pytest.mark.parametrize("line, message", [
    ('{"dialogue": "d2", "turn": 0,', "invalid JSON"),
    ('{"dialogue": "d2", "turn": 0, "text": "hi"}', r"the utterance lacks \['speaker'\]"),
    (_utterances(turn=-1), "turn must be an integer >= 0"),
    (_utterances(dialogue=True), "dialogue must be a non-empty string or an integer"),
    (_utterances(dialogue="d1"), "dialogue 'd1' turn 0 repeats line 1"),
    (_utterances(txt="x"), r"the utterance has unknown keys \['txt'\]"),
    (_utterances(text=""), "text must be a non-empty string"),
    (_utterances(id="d1_0"), "utterance id 'd1_0' repeats line 1"),
    (_utterances(labels=["joy"]), "labels must be an object"),
    (_utterances(audio="missing.npy"), "audio: cannot read a numeric array from"),
    (_utterances(audio="nan.npy"), "audio features contain NaN or inf"),
    (_utterances(audio="narrow.npy"), r"audio features have shape \(3, 5\), expected \[frames>0, 24\]"),
    (_utterances(audio="huge.npy"), r"its header claims a \(60000000, 1024\) float32 array \(245,760,000,000 "
                                    r"bytes\) but the file holds"),
    (_utterances(audio="fifo.npy"), "fifo.npy: not a regular file"),
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    (_utterances(audio="link.npy"), "audio 'link.npy' leaves the input's directory"),
    (_utterances(audio="../x.npy"), "audio '../x.npy' leaves the input's directory"),
    (_utterances(audio="/etc/hostname"), "audio '/etc/hostname' leaves the input's directory"),
    (_utterances(audio="/no/such/file"), "audio '/no/such/file' leaves the input's directory"),
])
def test_a_bad_line_is_one_error_naming_it(tmp_path, line, message):
    path = _input(tmp_path, line)
    with pytest.raises(errors.InputError, match=f"^{path}:2: .*{message}"):
        dialogue_jsonl.read(path, text.VocabularyTokenizer(list(text.SPECIAL_TOKENS), "word"), _FEATURES)


_FEATURES = {"audio": dialogue_jsonl.FeatureSpec(24, 10), "visual": dialogue_jsonl.FeatureSpec(16, 10)}


def test_only_the_frames_the_model_reads_are_read_and_outside_paths_need_the_flag(tmp_path):
    frames = np.arange(200_000, dtype=np.float32)[:, None] * np.ones(24, np.float32)
    np.save(tmp_path / "long.npy", frames)
    path = _input(tmp_path, _utterances(audio="long.npy", visual=None))
    tokenizer = text.VocabularyTokenizer(list(text.SPECIAL_TOKENS), "word")
    audio = dialogue_jsonl.read(path, tokenizer, _FEATURES)[1].audio[0]
    np.testing.assert_array_equal(audio, frames[arrays.frame_indices(len(frames), 10)])
    assert not isinstance(audio, np.memmap) and audio.shape == (10, 24)

    path = _input(tmp_path, _utterances(audio="link.npy"))
    assert dialogue_jsonl.read(path, tokenizer, _FEATURES, allow_outside=True)[1].audio[0].shape == (3, 24)
    os.remove(path)
    os.mkfifo(path)
    with pytest.raises(errors.InputError, match="is not a regular file"):
        dialogue_jsonl.read(path, tokenizer, _FEATURES)


def test_a_vector_is_one_frame_and_an_empty_id_is_the_default_as_in_training(tmp_path):
    np.save(tmp_path / "vector.npy", np.arange(24, dtype=np.float32))
    path = _input(tmp_path, _utterances(audio="vector.npy", id="", speaker=""))
    dialogue = dialogue_jsonl.read(path, text.VocabularyTokenizer(list(text.SPECIAL_TOKENS), "word"), _FEATURES)[1]
    np.testing.assert_array_equal(dialogue.audio[0], np.arange(24, dtype=np.float32)[None])
    assert dialogue.utterance_ids == ["d2_0"] and dialogue.speakers == [""]


def test_a_line_longer_than_the_limit_is_refused_without_reading_on(tmp_path, monkeypatch):
    monkeypatch.setattr(dialogue_jsonl, "MAX_LINE_BYTES", 100)
    path = _input(tmp_path, _utterances(text="x" * 200))
    with pytest.raises(errors.InputError, match=f"^{path}:2: line longer than 100 bytes"):
        dialogue_jsonl.read(path, text.VocabularyTokenizer(list(text.SPECIAL_TOKENS), "word"), _FEATURES)


def test_a_file_that_is_not_utf8_names_the_line_and_how_to_convert_it(tmp_path):
    path = _input(tmp_path, _utterances())
    with open(path, "ab") as f:
        f.write('{"dialogue": "d9", "turn": 0, "speaker": "A", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(errors.InputError, match=f"^{path}:3: byte 0xe9 is not valid UTF-8; the input must be "
                                                r"UTF-8-encoded JSONL \(convert it, e.g. `iconv"):
        dialogue_jsonl.read(path, text.VocabularyTokenizer(list(text.SPECIAL_TOKENS), "word"), _FEATURES)


def test_a_bad_line_leaves_no_output_and_the_cli_names_it(trained_run, tmp_path):
    path = _input(tmp_path, _utterances(audio="nan.npy"))
    output = tmp_path / "preds.jsonl"
    output.write_text("earlier predictions\n")
    code, out = run_module("mmjax.predict", f"--workdir={trained_run[1]}", f"--input={path}", f"--output={output}")
    assert code == 2 and f"mmjax.predict: error: {path}:2: " in out and "Traceback" not in out, out
    assert output.read_text() == "earlier predictions\n"
    assert sorted(os.listdir(tmp_path)) == ["fifo.npy", "huge.npy", "input.jsonl", "link.npy", "nan.npy", "narrow.npy",
                                           "preds.jsonl"]
