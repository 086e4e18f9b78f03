"""Parameters of the stacker."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LightGBMParams:
    """The LightGBM stacker; small trees because it sees a handful of features.

    Early stopping never looks at the fold being predicted: inside every fit,
    ``inner_folds`` stratified splits of the training rows pick the number of
    rounds (their mean best round), then the model is refitted on all training
    rows with that many.
    """

    num_leaves: int = 7
    learning_rate: float = 0.05
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    inner_folds: int = 4
    min_child_samples: int = 10
    lambda_l2: float = 1.0
    feature_fraction: float = 1.0
    num_threads: int = 1
    # force the fake probability to be non-decreasing in each branch's score
    monotone_branch_scores: bool = False

    def __post_init__(self) -> None:
        if self.inner_folds < 2:
            raise ValueError(f"stack.lightgbm.inner_folds must be at least 2, got {self.inner_folds}")


@dataclass
class StackConfig:
    # branch name -> folder holding its oof.csv / val_pred.csv / test_pred.csv (relative to
    # the run folder, or absolute); empty means every branch the run folder holds
    branches: dict[str, str] = field(default_factory=dict)
    use_metadata: bool = True  # add cheap manifest columns (faces found, detection confidence, ...)
    # method written to the submission: "auto" = best stacked-OOF AUC, else one of
    # <branch>_only, mean, rank_mean, logistic, lightgbm
    method: str = "auto"
    pred_column: str = "y_pred"  # submission's score column (some challenge phases used "score")
    logistic_c: float = 1.0
    lightgbm: LightGBMParams = field(default_factory=LightGBMParams)
