"""soft_share on a synthetic corpus the size of CMMA with realistic feature sizes: 1,801 / 600 /
600 dialogues (~25k utterances) with 50 x 74 audio and 50 x 35 visual frames per utterance (the
COVAREP / Facet sizes of the field's feature files). For measuring the input pipeline at scale::

    python -m mmjax.benchmark --config=configs/cmma_size_features.py --input-only
    python -m mmjax.benchmark --config=configs/cmma_size_features.py    # + the step it feeds

The corpus (~560 MB) is generated into data.dir on first use.
"""

from configs import soft_share


def get_config():
    config = soft_share.get_config()
    config.data.dir = "data_cache/synthetic_cmma_size"
    config.data.synthetic_dialogues = {"train": 1801, "validation": 600, "test": 600}
    config.data.synthetic_features = {"audio_dim": 74, "visual_dim": 35,
                                      "audio_frames": (50, 50), "visual_frames": (50, 50)}
    config.data.max_audio_frames = 50
    config.data.max_visual_frames = 50
    return config
