"""A conditional diffusion model small enough to train in seconds: 2-D points, an MLP epsilon-denoiser.

Each "prompt" c has a two-mode Gaussian mixture as its data and a known reward, -||x - target_c||^2 with the
target on one of the modes, so preference pairs can be scored exactly. The DDPM schedule, the per-sample
error e = mean((eps_theta - eps)^2) and the ELBO weights are the ones the video trainer uses for epsilon
models, so the lab's losses see the same kind of numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from vbench_pref.train.models.unet3d import ddpm_step_precision


@dataclass(frozen=True)
class ToyConfig:
    dims: int = 2
    prompts: int = 8
    hidden: int = 128
    layers: int = 3
    timesteps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.2
    mode_spread: float = 0.25  # std of each mixture component
    pretrain_steps: int = 2000
    pretrain_batch: int = 512
    pretrain_lr: float = 2e-3


class Denoiser(nn.Module):
    """eps_theta(x_t, t, c): an MLP on the point, a sinusoidal embedding of t and a learned prompt embedding."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.prompt = nn.Embedding(config.prompts, 16)
        width = config.dims + 16 + 16
        blocks: list[nn.Module] = []
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.SiLU()]
            width = config.hidden
        blocks.append(nn.Linear(width, config.dims))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        frequencies = torch.exp(torch.arange(8, dtype=torch.float32) * (-math.log(1000.0) / 8))
        angles = t.float()[:, None] * frequencies[None, :]
        time = torch.cat([angles.sin(), angles.cos()], dim=1)
        return self.net(torch.cat([x, time.to(x.dtype), self.prompt(c).to(x.dtype)], dim=1))


@dataclass
class Schedule:
    betas: torch.Tensor
    alpha_bar: torch.Tensor
    lambdas: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # every training step weights its pairs by lambda_t: computed once here, not per step
        previous = torch.cat([torch.ones(1), self.alpha_bar[:-1]])
        self.lambdas = ddpm_step_precision(self.alpha_bar.double(), previous.double(), "epsilon").float()

    @classmethod
    def linear(cls, config: ToyConfig) -> "Schedule":
        betas = torch.linspace(config.beta_start, config.beta_end, config.timesteps, dtype=torch.float64)
        return cls(betas.float(), torch.cumprod(1 - betas, 0).float())

    def noised(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def elbo_weights(self) -> torch.Tensor:
        """lambda_t of each step: the reverse step's Gaussian log ratio is -lambda_t * e (per element)."""
        return self.lambdas


def modes(config: ToyConfig) -> torch.Tensor:
    """(prompts, 2, dims): the two mixture means of every prompt, on a circle of radius 1.5."""
    angles = torch.arange(config.prompts, dtype=torch.float32) * (2 * math.pi / config.prompts)
    first = torch.stack([angles.cos(), angles.sin()], dim=1) * 1.5
    second = -0.4 * first.flip(1) + 0.3 * first
    pair = torch.stack([first, second], dim=1)
    if config.dims > 2:
        pair = torch.cat([pair, torch.zeros(config.prompts, 2, config.dims - 2)], dim=2)
    return pair


def reward_targets(config: ToyConfig) -> torch.Tensor:
    """The reward's target of each prompt: its first mode, shifted a little off-centre so rewards vary within it."""
    return modes(config)[:, 0] * 1.1


def reward(x: torch.Tensor, c: torch.Tensor, config: ToyConfig) -> torch.Tensor:
    return -((x - reward_targets(config)[c]) ** 2).sum(dim=1)


def sample_data(config: ToyConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.randint(0, config.prompts, (n,), generator=generator)
    which = torch.randint(0, 2, (n,), generator=generator)
    centres = modes(config)[c, which]
    return centres + config.mode_spread * torch.randn(n, config.dims, generator=generator), c


def per_sample_error(model: nn.Module, schedule: Schedule, x0: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
                     noise: torch.Tensor) -> torch.Tensor:
    """e = mean over dimensions of (eps_theta(x_t) - eps)^2, per sample."""
    return (model(schedule.noised(x0, t, noise), t, c) - noise).pow(2).mean(dim=1)


def residual(model: nn.Module, schedule: Schedule, x0: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor) -> torch.Tensor:
    return model(schedule.noised(x0, t, noise), t, c) - noise


def pretrain(config: ToyConfig, seed: int) -> Denoiser:
    """The reference: plain denoising score matching on the data, Adam, a fixed number of steps."""
    torch.manual_seed(seed)
    model = Denoiser(config)
    schedule = Schedule.linear(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.pretrain_lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(config.pretrain_steps):
        x0, c = sample_data(config, config.pretrain_batch, generator)
        t = torch.randint(0, config.timesteps, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = per_sample_error(model, schedule, x0, c, t, noise).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def sample(model: nn.Module, config: ToyConfig, c: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Ancestral DDPM sampling (sigma_t^2 = beta_t), one point per entry of ``c``."""
    schedule = Schedule.linear(config)
    x = torch.randn(len(c), config.dims, generator=generator)
    for step in reversed(range(config.timesteps)):
        t = torch.full((len(c),), step, dtype=torch.long)
        eps = model(x, t, c)
        beta, a_bar = schedule.betas[step], schedule.alpha_bar[step]
        mean = (x - beta / (1 - a_bar).sqrt() * eps) / (1 - beta).sqrt()
        x = mean + (beta.sqrt() * torch.randn(x.shape, generator=generator) if step > 0 else 0.0)
    return x


@torch.no_grad()
def elbo(model: nn.Module, schedule: Schedule, x0: torch.Tensor, c: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """A many-timestep ELBO estimate of log p(x0) per sample, up to a constant: -sum_t lambda_t * e_t, every
    step t once with the given noise (fixed across calls, so changes between calls are the model's)."""
    weights = schedule.elbo_weights()
    n, steps = len(x0), len(weights)
    t = torch.arange(steps).repeat(n)
    errors = per_sample_error(model, schedule, x0.repeat_interleave(steps, 0), c.repeat_interleave(steps, 0), t,
                              noise.repeat_interleave(steps, 0)).view(n, steps)
    return -(errors * weights[None, :]).sum(dim=1)
