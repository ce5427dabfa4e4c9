import pickle

import jax
import numpy as np
import pytest

from mmjax import inputs
from mmjax.data import pipeline, records
from mmjax.data.corpora import synthetic
from tests.tiny import SMALL_CORPUS, tiny_config


@pytest.mark.parametrize("max_turns,context", [(4, 0), (4, 2), (5, 3), (12, 3)])
def test_windows_label_every_turn_once_with_its_context(max_turns, context):
    turns = np.array([1, 3, 4, 5, 9, 14])
    windows = pipeline.context_windows(turns, max_turns, context)
    for dialogue, n in enumerate(turns):
        labelled = []
        for d, start, first in windows[windows[:, 0] == dialogue]:
            covered = list(range(start + first, min(start + max_turns, n)))
            for t in covered:  # each labelled turn sees min(t, context) previous turns in its window
                assert t - start >= min(t, context)
            labelled += covered
        assert labelled == list(range(n))


def _shapes(config, manifest):
    return inputs.shapes(config, manifest)


def test_a_window_is_padded_into_its_batch_row_with_masks_and_labels(records_dir):
    config = tiny_config(records_dir)
    config.data.max_turns, config.data.max_tokens, config.data.max_audio_frames = 4, 5, 6
    manifest = records.load_manifest(records_dir)
    dialogue = synthetic.generate("train", 1, seed=0)[0]
    dialogue.audio[1] = None
    shapes = _shapes(config, manifest)
    batch = pipeline.empty_batch(shapes, 2)
    pipeline.fill_window(batch, 1, pipeline.pad_dialogue(dialogue, shapes), start=2, first_labelled=1)
    assert not batch["turn_mask"][0].any()  # the other row keeps its padding
    example = jax.tree.map(lambda x: x[1], batch)
    T = 4
    assert example["tokens"].shape == (T, 5) and example["audio"].shape == (T, 6, synthetic.AUDIO_DIM)
    assert example["visual"].shape == (T, config.data.max_visual_frames, synthetic.VISUAL_DIM)
    n = min(T, dialogue.num_turns - 2)
    np.testing.assert_array_equal(example["turn_mask"], np.arange(T) < n)
    for row in range(n):
        t = 2 + row
        length = min(len(dialogue.tokens[t]), 5)
        assert example["token_mask"][row].sum() == length
        np.testing.assert_array_equal(example["tokens"][row, :length], dialogue.tokens[t][:length])
        frames = 0 if dialogue.audio[t] is None else min(len(dialogue.audio[t]), 6)
        assert example["audio_mask"][row].sum() == frames
    assert not example["audio_mask"][n:].any() and not example["token_mask"][n:].any()
    labels = example["labels"]["sarcasm"]
    assert labels[0] == -1  # context-only turn
    np.testing.assert_array_equal(labels[1:n], dialogue.labels["sarcasm"][3:2 + n])
    assert (labels[n:] == -1).all()


def test_train_batches_are_static_and_seeded(records_dir):
    config = tiny_config(records_dir)
    manifest = records.load_manifest(records_dir)
    first = next(iter(inputs.train_dataset(config, manifest, 0, 1)))
    again = next(iter(inputs.train_dataset(config, manifest, 0, 1)))
    config.seed = 1
    other = next(iter(inputs.train_dataset(config, manifest, 0, 1)))
    assert first["tokens"].shape == (8, config.data.max_turns, config.data.max_tokens)
    assert first["labels"]["emotion"].shape == (8, config.data.max_turns)
    np.testing.assert_array_equal(first["tokens"], again["tokens"])
    assert not np.array_equal(first["tokens"], other["tokens"])


def test_shuffled_index_batches_are_seeded_epoch_permutations_shared_by_hosts():
    """Laid end to end, the batches are one permutation per epoch, new each epoch and each seed;
    the hosts' chunks concatenate to the one-host batch; a pickled copy (a grain worker's) agrees."""
    one = pipeline.ShuffledIndexBatches(10, 4, seed=0)
    sequence = np.concatenate([one[b] for b in range(10)])  # 40 positions: epochs 0..3
    epochs = sequence.reshape(4, 10)
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 4
    assert not np.array_equal(epochs[0], pipeline.ShuffledIndexBatches(10, 4, seed=1).permutation(0))
    hosts = [pipeline.ShuffledIndexBatches(10, 4, 0, h, 2) for h in range(2)]
    for b in range(10):
        np.testing.assert_array_equal(np.concatenate([hosts[0][b], hosts[1][b]]), one[b])
    copy = pickle.loads(pickle.dumps(one))
    np.testing.assert_array_equal(np.concatenate([copy[b] for b in range(10)]), sequence)


def test_eval_over_two_hosts_covers_every_utterance_once(records_dir):
    config = tiny_config(records_dir)
    config.data.max_turns = 5
    manifest = records.load_manifest(records_dir)
    per_host = []
    for host in range(2):
        batches = list(inputs.eval_batches(config, manifest, "validation", host, 2))
        per_host.append(batches)
        assert all(b["tokens"].shape[0] == config.eval_batch_size // 2 for b in batches)
    assert len(per_host[0]) == len(per_host[1])
    labelled = sum(int((b["labels"]["sentiment"] >= 0).sum()) for batches in per_host for b in batches)
    assert labelled == manifest["splits"]["validation"]["utterances"]
    assert manifest["splits"]["validation"]["dialogues"] == SMALL_CORPUS["validation"]


def test_hosts_read_disjoint_shares_of_the_same_global_batches(records_dir):
    """Concatenating the hosts' batches gives the one-host batch: each host decodes only its rows."""
    config = tiny_config(records_dir)
    manifest = records.load_manifest(records_dir)
    one = iter(inputs.train_dataset(config, manifest, 0, 1))
    hosts = [iter(inputs.train_dataset(config, manifest, h, 2)) for h in range(2)]
    for _ in range(7):  # crosses an epoch boundary (the small corpus has ~50 windows)
        whole = next(one)
        shares = [next(h) for h in hosts]
        assert all(s["tokens"].shape[0] == config.batch_size // 2 for s in shares)
        np.testing.assert_array_equal(np.concatenate([s["tokens"] for s in shares]), whole["tokens"])
        np.testing.assert_array_equal(np.concatenate([s["audio"] for s in shares]), whole["audio"])


def test_cached_windows_give_the_same_batches_within_their_budget(records_dir):
    """Later epochs gather cached padded windows; a source without a cache (every window read and
    padded afresh), one whose budget holds three windows and one that holds them all give the
    same batches, positions and padding rows."""
    config = tiny_config(records_dir)
    config.data.max_turns = 5
    manifest = records.load_manifest(records_dir)
    source = inputs.window_source(config, manifest, "validation", positions=True)
    one_window = sum(x.nbytes for x in jax.tree.leaves(source._padding))  # a batch of one window
    sources = [pipeline.WindowSource(source.dialogues, source.shapes, config.model.context_turns, True, budget)
               for budget in (0, 3 * one_window + 1, 1 << 30)]
    assert [s.capacity for s in sources] == [0, 3, len(source)]
    windows = np.random.default_rng(0).permutation(len(source))
    for _ in range(2):  # filling the caches, then from them
        batches = [[s.batch(np.append(w, -1)) for w in np.array_split(windows, 4)] for s in sources]
        for batch in batches[1:]:
            jax.tree.map(np.testing.assert_array_equal, batches[0], batch)
    assert [int(s._filled.sum()) for s in sources] == [0, 3, len(source)]
    padding = batches[0][-1]  # the -1 row: an all-padding example
    assert not padding["turn_mask"][-1].any() and (padding["position"][-1] == -1).all()
    assert (padding["labels"]["sentiment"][-1] == -1).all()
    # A batch is a copy: writing into it leaves the cached windows as they were.
    batches[2][0]["tokens"][:] = -7
    again = np.array_split(windows, 4)[0]
    jax.tree.map(np.testing.assert_array_equal, sources[2].batch(again), sources[0].batch(again))


def test_a_source_goes_to_worker_processes_without_its_cache(records_dir):
    import cloudpickle

    config = tiny_config(records_dir)
    source = inputs.window_source(config, records.load_manifest(records_dir), "validation")
    first = source.batch([0, 1])
    copy = cloudpickle.loads(cloudpickle.dumps(source))  # what grain's worker processes receive
    assert not copy._filled.any() and copy._slab["tokens"].shape[0] == copy.capacity
    jax.tree.map(np.testing.assert_array_equal, copy.batch([0, 1]), first)
