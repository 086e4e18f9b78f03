"""Where and how tensors run: device, mixed precision, memory format, process group."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from mmdf.errors import MmdfError
from mmdf.train import distributed
from mmdf.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = full precision
    channels_last: bool
    dist: distributed.Dist

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    """Pick the device (CUDA when present unless told otherwise) and join DDP if launched by torchrun.

    Mixed precision and channels_last apply on CUDA only: on CPU they slow
    small models down and bf16 autocast changes results.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    want = cfg.device
    if want == "cuda" and not torch.cuda.is_available():
        raise MmdfError("train.device=cuda but no CUDA device is available; set train.device=auto or cpu")
    use_cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
    d = distributed.setup("cuda" if use_cuda else "cpu")
    device = torch.device(f"cuda:{d.local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        # fixed input sizes: let cuDNN pick the fastest kernels, unless results must repeat exactly
        torch.backends.cudnn.benchmark = not cfg.deterministic
    amp_dtype = None
    if use_cuda and cfg.amp != "off":
        if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
            amp_dtype = torch.bfloat16
        else:
            amp_dtype = torch.float16
    return Runtime(device, amp_dtype, use_cuda and cfg.channels_last, d)
