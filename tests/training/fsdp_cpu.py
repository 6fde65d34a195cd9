"""``accelerate launch --config_file FSDP.yaml -m tests.training.fsdp_cpu <training.train arguments>``
with ``ACCELERATE_USE_CPU=true``: ``training.train`` under real FSDP2 on CPU processes (gloo).

accelerate (1.15) never selects FSDP on a CPU: ``AcceleratorState`` turns a launch into FSDP
only when the process group's distributed type is a GPU kind (``MULTI_GPU``, ``MULTI_XPU``, ...),
and ``PartialState._prepare_backend`` labels a CPU process group ``MULTI_CPU`` (without
``ACCELERATE_USE_CPU`` it starts no process group at all on a machine without a GPU). Torch's
FSDP2 (``fully_shard``) itself runs on gloo. This entry point relabels the started CPU process
group ``MULTI_GPU`` before training builds its Accelerator, so accelerate goes down its FSDP2
path; that label is the one thing changed. The device stays the CPU, the backend gloo, and
the rest is ``training.train`` as shipped: sharding, gradient sync, sharded checkpoints,
the gathered adapter.
"""

from __future__ import annotations

import sys

from accelerate.state import PartialState
from accelerate.utils import DistributedType


def main(argv: list[str]) -> int:
    state = PartialState(cpu=True)  # starts the gloo process group of the launch
    if state.distributed_type != DistributedType.MULTI_CPU:
        raise SystemExit(f"launch with ACCELERATE_USE_CPU=true and 2+ processes, not {state.distributed_type}")
    state.distributed_type = DistributedType.MULTI_GPU  # shared state: what AcceleratorState reads

    import training.train as entry

    return entry.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
