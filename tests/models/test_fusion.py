import jax
import numpy as np
import pytest

from mmjax.models import fusion
from tests.tiny import quick_jit

WIDTH = 16
MODALITIES = ("text", "audio", "visual")
FRAMES = {"text": 5, "audio": 6, "visual": 4}
# Per utterance: which modalities are present (utterance 3 is a padding turn: none).
PRESENT = {"text": [1, 1, 1, 0], "audio": [1, 0, 0, 0], "visual": [1, 1, 0, 0]}


def _inputs(extra_frames, rng):
    """The fusion's inputs for 4 utterances, with junk in every masked frame and absent modality."""
    sequences, masks, utterances, present = {}, {}, {}, {}
    for m in MODALITIES:
        present[m] = np.array(PRESENT[m], bool)
        frames = FRAMES[m] + extra_frames
        lengths = np.array([FRAMES[m], 2, 1, 0]) * present[m]
        masks[m] = np.arange(frames)[None, :] < lengths[:, None]
        sequences[m] = rng.normal(size=(4, frames, WIDTH)).astype(np.float32)
        utterances[m] = rng.normal(size=(4, WIDTH)).astype(np.float32)
    return sequences, masks, utterances, present


def _keep_real(fresh, real):
    """``fresh`` inputs with the real (unmasked, present) values of ``real`` copied in."""
    sequences, masks, utterances, present = fresh
    out_sequences, out_utterances = {}, {}
    for m in MODALITIES:
        f = real[0][m].shape[1]
        out_sequences[m] = sequences[m].copy()
        out_sequences[m][:, :f] = np.where(real[1][m][..., None], real[0][m], sequences[m][:, :f])
        out_utterances[m] = np.where(present[m][:, None], real[2][m], utterances[m])
    return out_sequences, masks, out_utterances, present


@pytest.mark.parametrize("kind", sorted(fusion.FUSIONS))
def test_only_real_frames_of_present_modalities_matter(kind):
    module = fusion.FUSIONS[kind](MODALITIES, num_heads=2)
    inputs = _inputs(0, np.random.default_rng(0))
    params = quick_jit(module.init)(jax.random.key(0), *inputs)
    apply = quick_jit(module.apply)
    before = np.asarray(apply(params, *inputs))
    assert before.shape == (4, WIDTH) and np.isfinite(before).all()
    # More frames, and other junk in padding, masked frames and absent modalities: no change.
    for extra_frames, seed in [(0, 1), (3, 2)]:
        after = np.asarray(apply(params, *_keep_real(_inputs(extra_frames, np.random.default_rng(seed)), inputs)))
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    # A present modality does matter.
    utterances = dict(inputs[2], visual=inputs[2]["visual"][::-1].copy())
    moved = np.asarray(apply(params, inputs[0], inputs[1], utterances, inputs[3]))
    assert not np.allclose(moved[1], before[1], atol=1e-4)
