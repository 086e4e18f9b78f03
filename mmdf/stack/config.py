"""Parameters of the stacker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StackConfig:
    pred_column: str = "y_pred"
