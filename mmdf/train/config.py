"""Parameters of branch training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    branch: Literal["audio", "visual"] = "audio"
