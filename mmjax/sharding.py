"""Device mesh from the config, logical-axis rules, and shardings for parameters and batches."""

from __future__ import annotations

import collections
import contextlib
import json
import math

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from mmjax.data import packing
from mmjax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(config, num_devices: int) -> tuple[int, ...]:
    """Sizes of (data, fsdp, model) from ``config.mesh.shape``; one of them may be -1 (the rest)."""
    sizes = [int(config.mesh.shape[a]) for a in MESH_AXES]
    unknown = [a for a, s in zip(MESH_AXES, sizes) if s == -1]
    if len(unknown) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ConfigError(f"config.mesh.shape={dict(zip(MESH_AXES, sizes))}: sizes must be positive, "
                         "with at most one -1 (the rest of the devices)")
    known = math.prod(s for s in sizes if s != -1)
    if unknown:
        if num_devices % known:
            raise ConfigError(f"config.mesh.shape: {num_devices} devices are not divisible by {known}")
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ConfigError(f"config.mesh.shape={dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} "
                         f"devices, but {num_devices} are present")
    return tuple(sizes)


def make_mesh(config, devices=None) -> Mesh:
    """The (data, fsdp, model) mesh of ``config.mesh.shape`` over ``devices`` (default all).

    ``jax.make_mesh`` orders the devices by the accelerator's physical topology (rings on TPU
    slices); on CPU and GPU it keeps their order. The axes are Auto: shardings come from the
    logical-axis rules and the compiler partitions (newer JAX makes Explicit the default).
    """
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(config, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def logical_rules(config) -> tuple[tuple[str, str | tuple[str, ...] | None], ...]:
    return tuple((name, None if axes is None else (axes if isinstance(axes, str) else tuple(axes)))
                 for name, axes in config.mesh.rules)


def tree_shardings(boxed_abstract_tree, mesh: Mesh, rules):
    """NamedShardings for a tree whose leaves may be logically partitioned (flax boxes)."""
    specs = nn.get_partition_spec(boxed_abstract_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (example) axis split over data and fsdp; the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (outputs every host reads in full)."""
    return NamedSharding(mesh, PartitionSpec())


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch(local_batch, mesh: Mesh):
    """Host-local numpy batch (this host's rows) -> global jax.Arrays sharded over the mesh.

    Hosts pack their windows' text into as many rows as their own windows need
    (``mmjax.data.packing``): with several hosts, all pad to the most any of them has.
    """
    if jax.process_count() > 1 and packing.PACKED_TOKENS in local_batch:
        rows = int(np.max(multihost_utils.process_allgather(np.int32(packing.num_rows(local_batch)))))
        local_batch = packing.pad_rows(local_batch, rows)
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


class DevicePrefetch:
    """The global batches of a host's batch iterator, put on the devices ``ahead`` batches early,
    so their host-to-device copies overlap the steps before them.

    Checkpointable like the grain iterator it wraps (Orbax's grain handler calls ``get_state`` /
    ``set_state``): its state is the state before the next batch it will yield, so a resumed run
    continues with that batch, not after the ones fetched ahead.
    """

    def __init__(self, iterator, mesh: Mesh, ahead: int = 2):
        self.iterator, self.mesh, self.ahead = iterator, mesh, ahead
        self._queue: collections.deque = collections.deque()  # (iterator state before it, batch)

    def __iter__(self):
        return self

    def __next__(self):
        while len(self._queue) <= self.ahead:
            state = self.iterator.get_state()
            self._queue.append((state, global_batch(next(self.iterator), self.mesh)))
        return self._queue.popleft()[1]

    def get_state(self) -> bytes:
        return json.dumps(self._queue[0][0] if self._queue else self.iterator.get_state()).encode()

    def set_state(self, state: bytes) -> None:
        self._queue.clear()
        self.iterator.set_state(json.loads(state))

    def start_prefetch(self) -> None:
        """Called by the grain handler after restoring; the wrapped iterator prefetches itself."""


@contextlib.contextmanager
def activate(mesh: Mesh, rules):
    """Context for tracing: the mesh and the logical-axis rules the model's constraints use."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield
