"""Measure the train step and the input pipeline::

    python -m mmjax.benchmark --config=configs/soft_share.py            # step + input pipeline
    python -m mmjax.benchmark --config=configs/soft_share.py --input-only
    python -m mmjax.benchmark --config=configs/soft_share.py --summary   # parameters per module

Reports, after warm-up, the median train and eval step times (each step synced) and the train
step's time per step when steps are dispatched back to back as training runs them
(``pipelined_step_seconds``), at which it reports utterances and real (non-padding) text tokens
per second; the train step's
compile time and matmul FLOPs (``mmjax.flop_count``), achieved FLOP/s and its ratio to this
machine's measured matmul peak in the model's compute dtype (``config.model.dtype``); and the
input pipeline's windows (records) per second and its ratio to what the step consumes, in the
first epoch (every dialogue read and padded) and after it (padded windows cached, what the rest
of training sees). Latencies are medians, because shared machines are noisy. ``--summary`` only prints the
parameter count of every module (from abstract shapes: nothing is trained or allocated).
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, measurements, prepared_records, setup as setup_lib


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
    flags.DEFINE_integer("steps", 30, "Timed train steps (after warm-up).", lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed train steps first.", lower_bound=0)
    flags.DEFINE_integer("input_batches", 40, "Batches read to time the input pipeline.", lower_bound=1)
    flags.DEFINE_bool("input_only", False, "Only time the input pipeline.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
    flags.DEFINE_bool("summary", False, "Only print the number of parameters of every module.")
    flags.DEFINE_integer("summary_depth", 2, "Levels of the parameter tree --summary prints.")
    flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    config, FLAGS = flags.FLAGS.config, flags.FLAGS
    with cli.user_errors("mmjax.benchmark"):
        # As training does: a synthetic config's records are generated on first use.
        s = setup_lib.build(config, manifest=prepared_records.load_or_prepare(config))
        if FLAGS.summary:
            counts = measurements.parameter_counts(s.abstract_state.params, FLAGS.summary_depth)
            print(measurements.format_parameter_counts(counts))
            if FLAGS.json:
                with open(FLAGS.json, "w", encoding="utf-8") as f:
                    json.dump(counts, f, indent=1)
            return
        results = measurements.measure(config, s, FLAGS.steps, FLAGS.warmup, FLAGS.input_batches, FLAGS.input_only)
        print(json.dumps(results, indent=1))
        if FLAGS.json:
            with open(FLAGS.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)


def command():
    """The ``mmjax-benchmark`` console script (``python -m mmjax.benchmark``)."""
    cli.run("mmjax.benchmark", _define_flags, main)


if __name__ == "__main__":
    command()
