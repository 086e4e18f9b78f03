"""Backbones from timm, with the errors a user can act on.

Every branch model is ``timm.create_model(name, num_classes=1)``: one logit,
positive = fake. Pretrained weights need a download; offline that fails deep
inside huggingface_hub, so the failure is turned into an :class:`MmdfError`
that says what to set instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import timm
import torch

from mmdf.errors import MmdfError
from mmdf.train.config import ModelConfig

log = logging.getLogger(__name__)


def create_model(cfg: ModelConfig, key: str = "train.<branch>.model") -> torch.nn.Module:
    """A timm backbone with a single logit; ``key`` names the config section in errors."""
    if not timm.is_model(cfg.name):
        close = timm.list_models(f"*{cfg.name[:6]}*")[:8]
        raise MmdfError(
            f"{key}.name: timm has no model '{cfg.name}'"
            + (f"; similar names: {', '.join(close)}" if close else "")
        )
    kwargs = dict(num_classes=1, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate)
    if cfg.freq_bins:
        kwargs = dict(num_classes=0, global_pool="", in_chans=cfg.in_chans)
    try:
        model = timm.create_model(cfg.name, pretrained=cfg.pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - download errors come in many types
        if not cfg.pretrained:
            raise
        raise MmdfError(
            f"could not load pretrained weights for '{cfg.name}' ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); without internet access "
            f"set {key}.pretrained=false or {key}.checkpoint=PATH"
        ) from None
    if cfg.checkpoint:
        load_weights(model, cfg.checkpoint, key)
    return TimePooled(model, cfg.freq_bins, cfg.drop_rate) if cfg.freq_bins else model


class TimePooled(torch.nn.Module):
    """A timm body whose feature map is averaged over time only, kept in ``freq_bins`` frequency bins.

    A spectrogram's axes are not alike: where in time a cue sits does not
    matter, at which frequency it does (a vocoder's band cut-off, a codec's
    low-pass). Global average pooling throws the frequency away; this head
    keeps it: (B, C, F', T') -> mean over T' -> F' pooled to ``freq_bins`` ->
    (B, C * freq_bins) -> dropout -> one logit.
    """

    def __init__(self, body: torch.nn.Module, freq_bins: int, drop_rate: float):
        super().__init__()
        self.body = body
        self.pool = torch.nn.AdaptiveAvgPool2d((freq_bins, 1))
        self.drop = torch.nn.Dropout(drop_rate)
        self.fc = torch.nn.Linear(body.num_features * freq_bins, 1)
        self.pretrained_cfg = getattr(body, "pretrained_cfg", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pool(self.body.forward_features(x)).flatten(1)
        return self.fc(self.drop(z))


def time_logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray | None:
    """The logit of each time column (last axis) of the network's last feature map for one input (1, C, H, W):
    a class-activation map along time, whose mean is the network's logit. A :class:`TimePooled` head or a
    timm model whose classifier is linear over an average pool qualify; None for any other (checked)."""
    import torch.nn.functional as F  # torch is loaded already (top of the module); F only here

    model.eval()
    with torch.inference_mode():
        if isinstance(model, TimePooled):
            f = model.body.forward_features(x)
            g = F.adaptive_avg_pool2d(f, (model.pool.output_size[0], f.shape[-1]))  # (1, C, bins, T)
            logits = model.fc(g.permute(0, 3, 1, 2).flatten(2))[0, :, 0]
        else:
            head = model.get_classifier() if hasattr(model, "get_classifier") else None
            if not isinstance(head, torch.nn.Linear) or not hasattr(model, "forward_features"):
                return None
            f = model.forward_features(x)
            if f.ndim != 4:
                return None
            logits = head(f.mean(dim=2).transpose(1, 2))[0, :, 0]
        whole = model(x).float().reshape(-1)[0]
    if not torch.isclose(logits.float().mean(), whole, rtol=1e-3, atol=1e-3):
        return None  # the head is not a linear map of a mean: no exact map along time
    return logits.float().cpu().numpy().astype(np.float64)


def load_weights(model: torch.nn.Module, path: str | Path, key: str = "model") -> None:
    """Start from local weights: a state dict, timm checkpoint or one of our ``best.pt``.

    Tensors whose shape differs (e.g. another classifier head) are skipped; a
    file sharing almost nothing with the model is an error, not a silent no-op.
    """
    path = Path(path)
    if not path.is_file():
        raise MmdfError(f"{key}.checkpoint: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except Exception as exc:  # noqa: BLE001
        raise MmdfError(f"{key}.checkpoint: cannot read {path}: {exc}") from None
    if isinstance(state, dict):
        for name in ("model", "state_dict", "state_dict_ema"):
            if isinstance(state.get(name), dict):
                state = state[name]
                break
    state = timm.models.clean_state_dict(state)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < 0.5 * len(own):
        raise MmdfError(
            f"{key}.checkpoint: {path} matches only {len(usable)} of {len(own)} tensors of "
            f"'{type(model).__name__}'; is it for another model?"
        )
    model.load_state_dict(usable, strict=False)
    skipped = sorted(set(own) - set(usable))
    log.info("loaded %d tensors from %s%s", len(usable), path,
             f" (kept initial weights for {', '.join(skipped[:4])}...)" if skipped else "")


def normalization(model: torch.nn.Module, in_chans: int) -> tuple[list[float], list[float]]:
    """Mean and std the backbone was trained with (averaged over RGB for 1-channel inputs)."""
    pc = getattr(model, "pretrained_cfg", {}) or {}
    mean = list(pc.get("mean", (0.485, 0.456, 0.406)))
    std = list(pc.get("std", (0.229, 0.224, 0.225)))
    if in_chans != len(mean):
        mean = [sum(mean) / len(mean)] * in_chans
        std = [sum(std) / len(std)] * in_chans
    return mean, std
