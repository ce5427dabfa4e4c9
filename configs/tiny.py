"""The model-size ladder's smallest rung: soft sharing at width 64 with a one-layer text
Transformer learnt from the corpus (``soft_share.py`` under the ladder's name).

    python -m mmjax.benchmark --config=configs/tiny.py

Rungs: ``tiny`` (0.4 M parameters), ``base`` (all-MiniLM-L6-v2 fine-tuned, width 384) and
``large`` (a BERT-base-sized text encoder, width 768). BENCHMARKS.md has each one's step time,
FLOPs, memory and utilisation.
"""

from configs import soft_share


def get_config():
    return soft_share.get_config()
