"""One rank of tests/test_training_distributed.py: `torchrun --nproc_per_node 2 tests/distributed_worker.py OUT ARGS`.

Runs `elysium.training.sft.train` on the config of ARGS (`--config FILE`, then overrides) and records, per rank,
into `OUT/rank<R>.json`: the world size and distributed type this rank trained with, which samples it built
(map-style: the `MixtureDataset` indices; a stream: the track records' ids, each read once a pass) and which of
our own writers it called (synthetic data, skip counts, the Hub-ready final folder). Not collected by pytest.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path


def main() -> int:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from accelerate import PartialState
    from transformers import TrainerCallback

    import elysium.training.callbacks as callbacks
    import elysium.training.mixture as mixture
    import elysium.training.sft as sft
    from elysium.training.config import load_config

    class StartRecording(TrainerCallback):
        """SFTTrainer builds the first sample to inspect it: record only what training fetches."""

        def on_train_begin(self, args, state, control, **kwargs):
            recording[0] = True

    seen: dict[str, list] = {"indices": [], "records": []}
    recording = [False]
    writes: list[str] = []

    def record_writer(module, name):
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            writes.append(name)
            return original(*args, **kwargs)

        setattr(module, name, wrapper)

    for module, name in ((sft, "synthesize"), (sft, "make_hub_ready"), (callbacks, "write_json_atomic")):
        record_writer(module, name)

    get_item = mixture.MixtureDataset.__getitem__

    def recording_get_item(self, index):
        if recording[0]:
            seen["indices"].append([self.epoch, int(index)])
        return get_item(self, index)

    mixture.MixtureDataset.__getitem__ = recording_get_item
    example_of = mixture.TrackSource.example_of

    def recording_example_of(self, record, builder, rng):
        if recording[0] and self.records is None:  # the streaming path builds a TrackSource without records
            seen["records"].append(record["id"])
        return example_of(self, record, builder, rng)

    mixture.TrackSource.example_of = recording_example_of

    sft.train(load_config(argv[1], argv[2:]), callbacks=[StartRecording()])  # argv: --config FILE overrides...
    state = PartialState()
    import torch.distributed as dist

    report = {
        "rank": state.process_index,
        "env_rank": int(os.environ.get("RANK", -1)),
        "num_processes": state.num_processes,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "distributed_type": str(state.distributed_type),
        "writes": writes,
        **seen,
    }
    (out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
