"""Train a model: ``python -m mmjax.train --config=configs/soft_share.py --workdir=runs/soft_share``.

Any config key can be overridden, e.g. ``--config.num_train_steps=200 --config.data.dir=...``.
Re-running the same command resumes from the workdir's latest checkpoint.
"""

from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, trainer


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Path to a config file with get_config().", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and reports.")
    flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    with cli.user_errors("mmjax.train"):
        trainer.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


def command():
    """The ``mmjax-train`` console script (``python -m mmjax.train``)."""
    cli.run("mmjax.train", _define_flags, main)


if __name__ == "__main__":
    command()
