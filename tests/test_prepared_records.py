"""The records a config reads: loaded as they are, the synthetic corpus generated on demand,
another corpus never overwritten."""

import json
import os
import shutil

import pytest

from mmjax import prepared_records
from mmjax.data import records, schema
from mmjax.errors import ConfigError, RecordError
from tests.tiny import tiny_config


def test_synthetic_records_are_rebuilt_when_their_spec_changes(tmp_path):
    config = tiny_config(str(tmp_path / "records"))
    first = prepared_records.load_or_prepare(config)
    assert first["splits"]["train"]["dialogues"] == 48
    config.data.synthetic_dialogues = {"train": 20, "validation": 4, "test": 4}
    rebuilt = prepared_records.load_or_prepare(config)
    assert rebuilt["splits"]["train"]["dialogues"] == 20
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]


def test_a_data_dir_holding_other_files_is_never_replaced_by_the_synthetic_corpus(tmp_path):
    (tmp_path / "my_corpus.jsonl").write_text("{}")
    config = tiny_config(str(tmp_path))
    with pytest.raises(ConfigError, match=r"config.data.dir=.* holds files that are not prepared records "
                                          r"\('my_corpus.jsonl'\): it holds no prepared corpus"):
        prepared_records.load_or_prepare(config)
    assert os.listdir(tmp_path) == ["my_corpus.jsonl"]
    # Synthetic records of another spec beside the user's file: not regenerated over it either.
    os.remove(tmp_path / "my_corpus.jsonl")
    prepared_records.load_or_prepare(config)
    (tmp_path / "notes.txt").write_text("mine")
    config.data.synthetic_dialogues = {"train": 20, "validation": 4, "test": 4}
    with pytest.raises(ConfigError, match=r"\('notes.txt'\): it holds synthetic records of another spec"):
        prepared_records.load_or_prepare(config)
    assert (tmp_path / "notes.txt").exists()


def test_tasks_the_corpus_lacks_are_a_config_error(records_dir):
    config = tiny_config(records_dir)
    config.data.corpus = "other"
    with pytest.raises(ConfigError, match=r"config.data.corpus='other' but .* holds the 'synthetic' corpus"):
        prepared_records.load_or_prepare(config)


def test_an_empty_corpus_name_takes_the_records_own(records_dir, tmp_path):
    config = tiny_config(records_dir)
    assert config.data.corpus == ""
    assert prepared_records.load_or_prepare(config)["corpus"] == config.data.corpus == "synthetic"
    renamed = str(tmp_path / "renamed")
    shutil.copytree(records_dir, renamed)
    with open(os.path.join(renamed, records.MANIFEST)) as f:
        manifest = json.load(f)
    with open(os.path.join(renamed, records.MANIFEST), "w") as f:
        json.dump({**manifest, "corpus": "mine"}, f)
    config = tiny_config(renamed)
    assert prepared_records.load_or_prepare(config)["corpus"] == config.data.corpus == "mine"  # not regenerated
    config.data.tokenizer = "minilm"
    with pytest.raises(ConfigError, match=r"config.data.tokenizer='minilm' applies to the synthetic corpus only; "
                                          r"the 'mine' records"):
        prepared_records.load_or_prepare(config)


def test_tokenizer_choice_is_for_the_synthetic_corpus_only(records_dir):
    config = tiny_config(records_dir)
    config.data.corpus, config.data.tokenizer = "other", "minilm"
    with pytest.raises(ConfigError, match=r"config.data.tokenizer='minilm' applies to the synthetic corpus only"):
        prepared_records.load_or_prepare(config)


def test_another_corpus_is_never_overwritten_by_synthetic_records(tmp_path):
    """Records of another corpus and an old schema version stay untouched: the error names them."""
    config = tiny_config(str(tmp_path / "records"))
    prepared_records.load_or_prepare(config)
    manifest_path = tmp_path / "records" / records.MANIFEST
    text = manifest_path.read_text().replace('"corpus": "synthetic"', '"corpus": "users_corpus"')
    manifest_path.write_text(text.replace(f'"schema_version": {schema.SCHEMA_VERSION}', '"schema_version": 0'))
    with pytest.raises(RecordError, match="schema version 0"):
        prepared_records.load_or_prepare(config)
    assert '"corpus": "users_corpus"' in manifest_path.read_text()
