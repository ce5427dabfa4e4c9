"""A small, fast variant of the default config, for tests; also a config file for subprocess
tests: ``--config=tests/tiny.py --config.data.dir=...``."""

import functools
import os
import subprocess
import sys

import jax

from configs import soft_share

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL_CORPUS = {"train": 48, "validation": 12, "test": 12}

# Tests' one-off programs spend most of their time compiling; XLA's CPU backend passes cost
# several times more than they save on these tiny shapes.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                 "xla_cpu_use_fusion_emitters": False}


@functools.cache
def _known_compile_options() -> dict:
    """The QUICK_COMPILE options this jaxlib's XLA accepts (an unknown one fails the compile;
    jax 0.12's XLA has no ``xla_cpu_use_fusion_emitters``)."""
    known = {}
    for name, value in QUICK_COMPILE.items():
        try:
            jax.jit(lambda: 0, compiler_options={name: value}).lower().compile()
        except jax.errors.JaxRuntimeError:
            continue
        known[name] = value
    return known


def quick_jit(fun, **kwargs):
    """jax.jit with QUICK_COMPILE: for small programs a test runs once or twice."""
    return jax.jit(fun, compiler_options=_known_compile_options(), **kwargs)


def tiny_config(data_dir: str, base=soft_share):
    """A small, fast variant of ``base`` reading ``data_dir`` (the small synthetic corpus)."""
    config = base.get_config()
    config.data.dir = data_dir
    config.data.synthetic_dialogues = SMALL_CORPUS
    config.batch_size = 8
    config.eval_batch_size = 8
    config.num_train_steps = 4
    config.warmup_steps = 1
    config.log_every_steps = 2
    config.eval_every_steps = 4
    config.checkpoint_every_steps = 2
    config.model.width = 32
    config.model.mlp_dim = 32
    config.model.tower_hidden = 32
    config.model.dropout = 0.0
    config.log_confusion_figures = False  # drawing them costs more than these steps
    return config


def get_config():
    return tiny_config("data_cache/tiny")


def run_module(*args, env=None, timeout=240, wait=True):
    """Runs ``python -m args...`` in the repository on 1 CPU device (unless ``env`` says otherwise).

    Returns (exit code, stdout + stderr), or the Popen when ``wait`` is False.
    """
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", **(env or {})}
    command = [sys.executable, "-m", *args]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def run_on_a_small_disk(disk: str, size: str, script: str, timeout=600) -> tuple[int, str]:
    """Runs the shell ``script`` with a ``size`` tmpfs (e.g. "4m") mounted at the directory
    ``disk``, in a private mount namespace (``unshare``; no root needed where user namespaces are
    enabled). ``$PY`` in the script is this Python; the repository is the working directory.
    Returns (exit code, output); skips the test where no namespace can be made."""
    import shutil

    import pytest

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("a full disk is simulated with a tmpfs in a private mount namespace, which this machine "
                    "does not allow (unshare -rm)")
    os.makedirs(disk, exist_ok=True)
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "PY": sys.executable}
    full = f"mount -t tmpfs -o size={size} tmpfs {disk} || exit 99\n{script}"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", full], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def scored_checkpoints(workdir: str, scores: dict[int, dict[str, float]], keep_latest: int | None = None) -> None:
    """Saves a one-number state at each step of ``scores`` ({step: {task: validation score}}) with
    the scores a per-task run saves (the joint one their mean), and their validation lines in
    ``metrics.jsonl``: the checkpoint ranking without training."""
    import json

    import numpy as np
    import orbax.checkpoint as ocp

    from mmjax import checkpointing

    tasks = next(iter(scores.values()))
    mngr = checkpointing.manager(workdir, keep_latest, best_of_tasks=tasks)
    lines = []
    for step, by_task in scores.items():
        joint = float(np.mean(list(by_task.values())))
        mngr.save(step, metrics=checkpointing.step_metrics(step, joint, by_task),
                  args=ocp.args.Composite(state=ocp.args.StandardSave({"step": np.int32(step)})))
        lines.append(json.dumps({"step": step, "split": "validation", "score": joint,
                                 **{f"{t}/macro_f1": v for t, v in by_task.items()}}))
    mngr.wait_until_finished()
    mngr.close()
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
