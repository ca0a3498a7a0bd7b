"""Training steps captured as CUDA graphs: one graph replay per optimisation step.

At the reference batch of 100 events a training step is several hundred small kernels
(two encoder/decoder passes, the critics on real, fake and interpolated points, the
penalty's backward pass, the mass term, two Adam updates, the moving average), and on a
GPU each of them waits for its launch from Python. `CapturedSteps` records the whole step
once into a `torch.cuda.CUDAGraph` and then replays it with one launch.

What one graph holds: the step of `turbosim_hep.training.step.TrainStep` on a static
batch (the noise of the networks and the penalty interpolates, every critic update, the
objective, both Adam updates) and the update of the moving average of the weights
(`update_moving_average`). What stays outside: copying the batch into the static
buffers, the schedules (the epoch's learning rate is copied into device tensors that the
captured Adam reads; which critic updates carry the lazy penalty selects the graph).

- Variants: a step's Python control flow depends on the batch shape and on the penalty
  scale of each critic update (0 skips the penalty and its cost), so each combination is
  its own graph, captured on first use: a run with ``gp_interval`` k has at most k, and
  two with one critic update per step (the penalised and the plain update).
- Random numbers: the run's generator is registered with every graph
  (`torch.cuda.CUDAGraph.register_generator_state`), so each replay draws the numbers
  an eager step would draw from the same generator state and advances it as far.
- Optimisers: the fused Adam of `Trainer`, captured with ``capturable`` set and its
  learning rates in device tensors (`LearningRates`); a rate the schedule sets on a
  group is copied into its tensor before the next replay. Outside the capture the
  groups are as eager ones (float rates, not capturable).
- Warm-up: a capture needs a few eager steps before it (lazy optimiser state, library
  handles). They run on copies of nothing: the trained state (weights, optimiser
  moments, average, generator) is saved before them and restored after, so capturing
  changes no result and a resumed run continues as an uninterrupted one.
- State: the graphs update the run's own tensors in place, so `Trainer.state_dict` is
  what an eager run writes and a checkpoint resumes either way. Whatever replaces a
  tensor the graphs read (loading a state, binding the run to new events) must call
  `CapturedSteps.reset`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from turbosim_hep.errors import TurbosimError
from turbosim_hep.training.step import TrainStep

#: Eager steps before each capture (the number PyTorch's CUDA graph examples use).
WARMUP_STEPS = 3


def graphs_unavailable(device: torch.device) -> str | None:
    """Why training steps cannot be captured on ``device``, or None when they can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return (
            f"torch {torch.__version__} cannot register a random generator with a CUDA "
            "graph (CUDAGraph.register_generator_state)"
        )
    return None


@torch.no_grad()
def update_moving_average(ema: AveragedModel, model: nn.Module, decay: float) -> None:
    """`AveragedModel.update_parameters` with ``get_ema_multi_avg_fn(decay)``, on the device.

    torch's update reads the count of updates on the host to copy the weights at the
    first update; here the first update is the same arithmetic as the later ones: each
    average is set to ``torch.where(n_averaged == 0, weight, average)`` and then moved
    by torch's own ``_foreach_lerp_`` with weight ``1 - decay``. After the first update
    the ``where`` keeps the average as it is, so the result is torch's bit for bit; at
    the first it makes it the weight, and ``lerp(w, w, 1 - decay)`` is ``w`` exactly.
    The buffers are copied (``use_buffers=False``) and the count incremented in place.

    Parameters
    ----------
    ema : AveragedModel
        The average, with ``use_buffers=False`` (`Trainer`'s); its ``n_averaged`` on the
        device of its weights to be captured.
    model : nn.Module
        The trained model.
    decay : float
        The decay of the average.
    """
    if ema.use_buffers:
        raise ValueError("update_moving_average averages the parameters only")
    averaged = [p.detach() for p in ema.module.parameters()]
    current = [p.detach() for p in model.parameters()]
    first = ema.n_averaged == 0
    for average, weight in zip(averaged, current, strict=True):
        average.copy_(torch.where(first, weight, average))
    torch._foreach_lerp_(averaged, current, 1 - decay)
    for average, buffer in zip(ema.module.buffers(), model.buffers(), strict=True):
        average.copy_(buffer)
    ema.n_averaged.add_(1)


class LearningRates:
    """The learning rates of the optimisers' groups as device tensors, which the captured
    Adam updates read.

    Outside a capture the groups keep their float rates and ``capturable`` as they were,
    so the optimisers' state dicts are those of eager ones; `bound` puts the tensors in
    for the warm-up and the capture, and `sync` copies a rate the schedule has set on a
    group into its tensor before the next replay.

    Parameters
    ----------
    optimizers : iterable of torch.optim.Optimizer
        The optimisers (their groups as they are now: bind again after loading a state).
    device : torch.device
        Where the tensors live.
    """

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer], device: torch.device):
        self.groups = [group for optimizer in optimizers for group in optimizer.param_groups]
        self.values = [_float(group["lr"]) for group in self.groups]
        self.tensors = [
            torch.tensor(value, dtype=torch.float32, device=device) for value in self.values
        ]

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """The groups capturable, with the tensors as their rates, while inside."""
        saved = [(group["lr"], group.get("capturable", False)) for group in self.groups]
        for group, tensor in zip(self.groups, self.tensors, strict=True):
            group["lr"], group["capturable"] = tensor, True
        try:
            yield
        finally:
            for group, (lr, capturable) in zip(self.groups, saved, strict=True):
                group["lr"], group["capturable"] = lr, capturable

    def sync(self) -> None:
        """Copy each group's rate into its tensor where it has changed since the last copy."""
        for i, group in enumerate(self.groups):
            value = _float(group["lr"])
            if value != self.values[i]:
                self.tensors[i].fill_(value)
                self.values[i] = value


def _float(value: float | torch.Tensor) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


class Snapshot:
    """What a training step changes, saved to be put back: the parameters of the model
    and the critics, the optimiser states, the moving average and the generator.

    A parameter without optimiser state when saved gets its state zeroed on `restore`
    (Adam's fresh state: step 0, zero moments), so the state stays allocated, as a
    capture needs.
    """

    def __init__(self, step: TrainStep, generator: torch.Generator, ema: AveragedModel | None):
        self._tensors = [p.detach() for p in step.model.parameters()]
        self._tensors += [p.detach() for p in step.objective.parameters()]
        if ema is not None:
            self._tensors += [t.detach() for t in ema.parameters()]
            self._tensors += [t.detach() for t in ema.buffers()]
        self._saved = [t.clone() for t in self._tensors]
        self._optimizers = [o for o in (step.optimizer, step.critic_optimizer) if o is not None]
        self._states = [
            {p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in state}
            for state in (o.state.items() for o in self._optimizers)
        ]
        self._generator = generator
        self._generator_state = generator.get_state()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the saved values back into the same tensors."""
        for tensor, saved in zip(self._tensors, self._saved, strict=True):
            tensor.copy_(saved)
        for optimizer, saved in zip(self._optimizers, self._states, strict=True):
            for parameter, state in optimizer.state.items():
                before = saved.get(parameter)
                for key, value in state.items():
                    if not torch.is_tensor(value):
                        continue
                    if before is None:
                        value.zero_()
                    else:
                        value.copy_(before[key])
        self._generator.set_state(self._generator_state)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    z: torch.Tensor
    values: torch.Tensor


class CapturedSteps:
    """Training steps of a `TrainStep` replayed from CUDA graphs, one per variant.

    Parameters
    ----------
    step : TrainStep
        The step captured (its model, objective and optimisers are the run's).
    generator : torch.Generator
        The run's CUDA generator (noise and penalty interpolates).
    ema_decay : float, optional
        Decay of the moving average updated inside the graph (when one is given).
    warmup : int
        Eager steps before each capture, undone after (`Snapshot`).
    """

    def __init__(
        self,
        step: TrainStep,
        generator: torch.Generator,
        ema_decay: float | None,
        warmup: int = WARMUP_STEPS,
    ):
        self.step = step
        self.generator = generator
        self.ema_decay = ema_decay
        self.warmup = warmup
        self._graphs: dict[tuple, _Captured] = {}
        self._learning_rates: LearningRates | None = None

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.step.optimizer, self.step.critic_optimizer) if o is not None]

    @property
    def n_graphs(self) -> int:
        """Number of graphs captured so far."""
        return len(self._graphs)

    def reset(self) -> None:
        """Drop the graphs: the next steps capture again, with the tensors of now."""
        if self._graphs:
            torch.cuda.synchronize()
        self._graphs.clear()
        self._learning_rates = None

    def body(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        penalty_scales: Sequence[float],
        ema: AveragedModel | None,
    ) -> torch.Tensor:
        """What a graph holds: one step on ``x``, ``z`` and the update of the average."""
        values = self.step(x, z, self.generator, penalty_scales)
        if ema is not None:
            update_moving_average(ema, self.step.model, self.ema_decay)
        return values

    def __call__(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        penalty_scales: Sequence[float],
        ema: AveragedModel | None,
    ) -> torch.Tensor:
        """One step on a standardised batch, and the update of ``ema`` if given.

        Returns
        -------
        torch.Tensor
            A new tensor with the step's values (`TrainStep`).

        Raises
        ------
        TurbosimError
            If the step cannot be captured.
        """
        scales = tuple(float(s) for s in penalty_scales)
        key = (tuple(x.shape), tuple(z.shape), x.dtype, scales, None if ema is None else id(ema))
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._graphs[key] = self._capture(x, z, scales, ema)
        self._learning_rates.sync()
        captured.x.copy_(x)
        captured.z.copy_(z)
        captured.graph.replay()
        return captured.values.clone()

    def _capture(
        self, x: torch.Tensor, z: torch.Tensor, scales: tuple[float, ...], ema: AveragedModel | None
    ) -> _Captured:
        device = x.device
        if self._learning_rates is None:
            self._learning_rates = LearningRates(self.optimizers, device)
        self._learning_rates.sync()
        if ema is not None and ema.n_averaged.device != device:
            ema.n_averaged = ema.n_averaged.to(device)
        static_x, static_z = x.clone(), z.clone()
        with self._learning_rates.bound():
            saved = Snapshot(self.step, self.generator, ema)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side), warnings.catch_warnings():
                # a capturable optimiser warns when it steps outside a capture
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                for _ in range(self.warmup):
                    self.body(static_x, static_z, scales, ema)
            torch.cuda.current_stream(device).wait_stream(side)
            saved.restore()
            graph = torch.cuda.CUDAGraph()
            graph.register_generator_state(self.generator)
            try:
                with torch.cuda.graph(graph):
                    values = self.body(static_x, static_z, scales, ema)
            except RuntimeError as err:
                self.step.objective.critic_parameters_frozen(False)
                first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise TurbosimError(
                    f"capturing the training step as a CUDA graph failed ({first_line}); "
                    "train with --no-graphs (TrainConfig.graphs=False)"
                ) from err
        return _Captured(graph, static_x, static_z, values)
