"""Resumable training: a trainer's whole state, saved as it goes, so that a stopped run
continues where it stopped (``genserve models train KIND --resume``).

A demo model trains for up to two hours on two cores, longer than a working session, and
the weights a trainer writes every few hundred steps (its exponential moving average, in
float16) are not enough to go on from: the optimizer's moments, the raw weights and the
random generators are lost with the process. ``Checkpoints`` saves all of them into
``train-state.pt`` in the output folder beside those weights, and restores them, so that a
run stopped and resumed ends with the same weights, bit for bit, as one never stopped (a
test checks it). The file is removed when the run ends; it is never a model file.

A trainer names its parts once (modules and optimizers: their ``state_dict``; a
``torch.Generator``; a ``random.Random``; a list, restored in place) and its phases in
order; each phase's loop runs over ``checkpoints.loop(phase, steps, ...)`` and,
after a step where ``checkpoints.due(step)``, writes its weights, then
``checkpoints.save(phase, step)``.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from genserve.errors import ConfigError

STATE_FILE = "train-state.pt"


def _state_of(part: Any) -> Any:
    import torch

    if isinstance(part, torch.Generator):
        return part.get_state()
    if isinstance(part, random.Random):
        return part.getstate()
    if isinstance(part, list):
        return list(part)
    return part.state_dict()


def _restore(part: Any, state: Any) -> None:
    import torch

    if isinstance(part, torch.Generator):
        part.set_state(state)
    elif isinstance(part, random.Random):
        part.setstate(state)
    elif isinstance(part, list):
        part[:] = state
    else:
        part.load_state_dict(state)


class Checkpoints:
    """Saves ``parts`` (name -> object) every ``every`` steps into ``out/train-state.pt``;
    with ``resume``, restores them from there first. The recipe is saved with them: a
    state saved under another recipe is refused (its steps would mean something else)."""

    def __init__(
        self,
        out: Path,
        recipe: dict[str, Any],
        parts: dict[str, Any],
        phases: tuple[str, ...],
        *,
        every: int,
        resume: bool = False,
    ) -> None:
        import torch

        self.started = time.monotonic()
        self.seconds_before = 0.0  # training time of the runs this one continues
        self.path = out / STATE_FILE
        self.recipe, self.parts, self.phases, self.every = recipe, parts, phases, every
        self.saved: tuple[int, int] | None = None  # (phase index, steps done) restored
        if not resume:
            return
        if not self.path.is_file():
            raise ConfigError(
                f"nothing to resume: {self.path} does not exist (a run saves it every "
                f"{every} steps and removes it when it ends)",
                field="resume",
            )
        state = torch.load(self.path, weights_only=True)  # tensors and plain values, no pickle
        if state["recipe"] != recipe:
            changed = sorted(
                k
                for k in set(recipe) | set(state["recipe"])
                if recipe.get(k) != state["recipe"].get(k)
            )
            raise ConfigError(
                f"{self.path} was saved by a run with another recipe ({', '.join(changed)} "
                "differ); resume with the same options, or delete it to start again",
                field="resume",
            )
        for name, part in parts.items():
            _restore(part, state["parts"][name])
        torch.set_rng_state(state["torch_rng"])
        self.saved = (phases.index(state["phase"]), state["steps"])
        self.seconds_before = state["seconds"]

    def seconds(self) -> float:
        """Training time so far, the stopped runs' included (up to their last save)."""
        return self.seconds_before + time.monotonic() - self.started

    def first(self, phase: str, steps: int) -> int:
        """The first step of ``phase`` to run (``steps``: the phase's length): where the
        restored run stopped, ``steps`` if it had finished the phase, else 0."""
        if self.saved is None:
            return 0
        at, done = self.saved
        here = self.phases.index(phase)
        return 0 if here > at else steps if here < at else done

    def loop(self, phase: str, steps: int, *, progress: bool, **bar: Any) -> Any:
        """The steps of ``phase`` still to run, as a progress bar (tqdm; ``bar``: its
        options) that starts where the restored run stopped."""
        from tqdm import tqdm

        first = self.first(phase, steps)
        return tqdm(range(first, steps), initial=first, total=steps, disable=not progress, **bar)

    def finished(self, phase: str) -> bool:
        """Whether the restored run had gone past ``phase``."""
        return self.saved is not None and self.saved[0] > self.phases.index(phase)

    def due(self, step: int) -> bool:
        """Whether to save after ``step`` (0-based): every ``every`` steps."""
        return (step + 1) % self.every == 0

    def save(self, phase: str, step: int) -> None:
        """Save every part, ``step`` (0-based) of ``phase`` done. Call it after the
        trainer's own checkpoint, so that the state holds what that left in the parts."""
        import torch

        state = {
            "recipe": self.recipe,
            "phase": phase,
            "steps": step + 1,
            "parts": {name: _state_of(part) for name, part in self.parts.items()},
            "torch_rng": torch.get_rng_state(),
            "seconds": self.seconds(),
        }
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)  # a run killed while saving keeps the previous state

    def finish(self) -> None:
        """The run ended: its state is no longer needed."""
        self.path.unlink(missing_ok=True)
