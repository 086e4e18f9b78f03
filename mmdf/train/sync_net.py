"""The sync branch's network: mouth crops over time and audio frames over time -> one out-of-sync logit.

Two small streams embed each video frame (a 2-D CNN on the grey mouth crop
and its change from the previous frame) and the audio of the same instant (a
small MLP on its log-mel row and that row's change); the
per-frame embeddings, and their product (agreement is a correlation, which a
product makes easy to learn), go through temporal convolutions that see
about half a second around each frame, and are averaged over the window. It
is trained from scratch on real clips only (see :mod:`mmdf.train.branches.sync`).
"""

from __future__ import annotations

import torch
from torch import nn


class SyncNet(nn.Module):
    """Input (B, T, S*S + n_mels): each frame's mouth crop (flattened, 0-1) then its standardised log-mel."""

    def __init__(self, mouth_size: int, n_mels: int, width: int = 16, drop_rate: float = 0.1, pool: int = 2):
        super().__init__()
        self.mouth_size, self.n_mels, self.pool = mouth_size, n_mels, pool
        w = width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.video = nn.Sequential(nn.AvgPool2d(pool) if pool > 1 else nn.Identity(), *block(2, w),
                                   *block(w, 2 * w), *block(2 * w, 2 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.audio = nn.Sequential(nn.Linear(2 * n_mels, 2 * w), nn.ReLU(inplace=True), nn.Linear(2 * w, 2 * w))
        self.temporal = nn.Sequential(
            nn.Conv1d(6 * w, 4 * w, 5, padding=2), nn.BatchNorm1d(4 * w), nn.ReLU(inplace=True),
            nn.Conv1d(4 * w, 4 * w, 5, padding=4, dilation=2), nn.BatchNorm1d(4 * w), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(4 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        s = self.mouth_size
        x = torch.cat([x, x - torch.cat([x[:, :1], x[:, :-1]], dim=1)], dim=-1)  # each frame and its change
        mouth = torch.stack([x[..., : s * s], x[..., -self.n_mels - s * s: -self.n_mels]], dim=2)
        v = self.video(mouth.reshape(b * t, 2, s, s)).reshape(b, t, -1)
        a = self.audio(torch.cat([x[..., s * s: s * s + self.n_mels], x[..., -self.n_mels:]], dim=-1))
        h = self.temporal(torch.cat([v, a, v * a], dim=-1).transpose(1, 2))
        return self.head(h.mean(dim=-1))
