"""The private random streams of seeded swaps (`SSEConfig.seed`): one `torch.Generator` per device, seeded from
(seed, process rank, optimizer step), so ranks draw differently and a resumed run redraws exactly."""

from __future__ import annotations

import hashlib

import torch


def process_rank() -> int:
    """This process's rank under torch.distributed, else 0."""
    return (
        torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    )


def stream_seed(seed: int, rank: int, step: int) -> int:
    """The private generator's seed for one process and optimizer step: a resumed run redraws exactly, ranks differ."""
    digest = hashlib.blake2b(f"sse_hf/{seed}/{rank}/{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class RandomStreams:
    """The generators the swaps draw from: private ones per device when `seed` is set, else torch's global one."""

    def __init__(self, seed: int | None):
        self.seed = seed
        self.step = 0  # the optimizer step the private generators are seeded for (see `set_step`)
        self._generators: dict[torch.device, torch.Generator] = {}

    def set_step(self, step: int) -> None:
        """Reseed every private generator for optimizer step `step` (nothing when the step is unchanged)."""
        if step == self.step:
            return
        self.step = step
        for generator in self._generators.values():
            generator.manual_seed(stream_seed(self.seed, process_rank(), self.step))

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A private generator when `seed` is set (seeded per process rank and step), else None: torch's global one.

        The handle makes the one for the embeddings' device when it attaches, outside the hooks, so that
        `torch.compile(fullgraph=True)` never has to create one inside its graph; one for a device the model moved
        to later is made here.
        """
        if self.seed is None:
            return None
        if torch.compiler.is_compiling():
            raise RuntimeError(
                "sse_hf: SSEConfig.seed draws the swaps from a private torch.Generator, which torch.compile cannot "
                "trace: with fullgraph=True the graph cannot break there. Use seed=None (the swaps then follow "
                "torch's global generator, which transformers.set_seed seeds and Trainer restores on resume) or "
                "compile without fullgraph=True."
            )
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(stream_seed(self.seed, process_rank(), self.step))
            self._generators[device] = generator
        return generator
