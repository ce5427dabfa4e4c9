"""The prepared records a config reads: loaded as they are (evaluation, prediction) or, for
training, with the synthetic corpus generated where it is wanted. Generation (records, and cached
text states through a frozen encoder) is a preparation step above both the data and the model
layers, so it lives here, not in the setup or the pipeline."""

from __future__ import annotations

import logging
import os

import jax
from jax.experimental import multihost_utils

from mmjax import atomic
from mmjax.data import records, text
from mmjax.data.corpora import synthetic
from mmjax.data.schema import SCHEMA_VERSION
from mmjax.errors import ConfigError, RecordError
from mmjax.models import model as model_lib, text_states

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def load(config) -> dict:
    """The manifest of ``config.data.dir`` as it is (never writes): its corpus must be
    ``config.data.corpus`` (empty: whatever it is, then recorded in the config)."""
    manifest = records.load_manifest(config.data.dir)
    _check_corpus(config, manifest)
    return manifest


def _check_corpus(config, manifest) -> None:
    if not isinstance(manifest.get("corpus"), str):
        raise RecordError(f"{config.data.dir!r}: its {records.MANIFEST} names no corpus (a \"corpus\" string); "
                          "run `python -m mmjax.prepare` again")
    if not config.data.corpus:
        config.data.corpus = manifest["corpus"]
    elif manifest["corpus"] != config.data.corpus:
        raise ConfigError(f"config.data.corpus={config.data.corpus!r} but config.data.dir={config.data.dir!r} holds "
                          f"the {manifest['corpus']!r} corpus (leave config.data.corpus empty to take the records' own)")


def load_or_prepare(config) -> dict:
    """The manifest of ``config.data.dir``. ``data.corpus=""`` takes whatever corpus the records
    there are (and sets ``config.data.corpus`` to its name, so the run records it); any other name
    must be theirs. The synthetic corpus (``"synthetic"``, or ``""`` where data.dir holds no
    records) is (re)generated there when missing or made by another generator version, seed,
    size or tokenizer: the records are a pure function of those, so nothing is lost."""
    path, corpus = config.data.dir, config.data.corpus
    existing = _existing_manifest(path) if not corpus else None
    synthetic_wanted = corpus == "synthetic" or (not corpus and (existing is None
                                                                 or existing.get("corpus") == "synthetic"))
    if not synthetic_wanted and config.data.tokenizer:
        named = corpus or (existing or {}).get("corpus")
        raise ConfigError(f"config.data.tokenizer={config.data.tokenizer!r} applies to the synthetic corpus only; "
                          f"the {named!r} records are tokenised by `python -m mmjax.prepare`")
    if synthetic_wanted:
        cached = config.model.text_encoder == "cached"
        wanted = synthetic.spec(config.data.synthetic_dialogues, config.data.synthetic_seed,
                                config.data.synthetic_features.to_dict(), config.data.tokenizer,
                                # cached text states of the checkpoint the config names
                                text_states.checkpoint_key(config.model.pretrained.path) if cached else None)
        if cached:  # on every host, before host 0 writes: a mismatch is then everyone's error
            tokenizer = text.from_config(config.data.tokenizer, synthetic.TOKENIZER)
            model_lib.check_text_vocabulary(config, tokenizer.describe())
        # Read on every host, so that a refusal is everyone's error (process 0 alone would leave the
        # others waiting at the sync below). Rebuild only synthetic records (another schema version
        # included); never overwrite another corpus: load_manifest and the corpus check below then
        # name the problem.
        existing = _existing_manifest(path)
        stale = existing is not None and existing.get("corpus") == "synthetic" and (
            existing.get("synthetic") != wanted or existing.get("schema_version") != SCHEMA_VERSION)
        if existing is None or stale:
            problem = records.replace_problem(path)
            if problem:  # never replace what the user keeps there
                what = "synthetic records of another spec to regenerate" if stale else "no prepared corpus"
                raise ConfigError(f"config.data.dir={path!r} {problem}: it holds {what} and the synthetic corpus "
                                  "would replace the whole directory; prepare a corpus there (`python -m "
                                  "mmjax.prepare`), move those files or name a new directory")
            if jax.process_index() == 0:
                _log.info("preparing the synthetic corpus %s in %s", wanted, path)
                synthetic.write(path, wanted["dialogues"], wanted["seed"], wanted["features"],
                                wanted["tokenizer"], text_states=None if "text_states" not in wanted
                                else text_states.Cache(wanted["text_states"]))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("synthetic records")
    return load(config)


def _existing_manifest(path: str) -> dict | None:
    """The manifest in ``path`` as written, whatever its schema version (None if there is none)."""
    manifest = os.path.join(path, records.MANIFEST)
    if not os.path.isfile(manifest):
        return None
    return atomic.read_json_object(manifest, RecordError, "run `python -m mmjax.prepare` again")
