"""Parameters of the stacker."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LightGBMParams:
    """The LightGBM stacker: small, strongly regularised trees, since it sees a handful of noisy inputs.

    Early stopping never looks at the fold being predicted: inside every fit,
    LightGBM's own CV on ``inner_folds`` stratified splits of the training rows
    picks the number of rounds, then the model is refitted on all of them.
    The defaults suit a few hundred clips as well as FFDV's hundreds of
    thousands: with 7 leaves, 5 clips a leaf and little L2 the stacker came
    last of all methods on the demo (300 train clips).
    """

    num_leaves: int = 4
    learning_rate: float = 0.05
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    inner_folds: int = 4
    min_child_samples: int = 20
    lambda_l2: float = 10.0
    feature_fraction: float = 1.0
    num_threads: int = 1
    # the fake probability is non-decreasing in each branch's score: a prior that keeps
    # small-data trees from fitting noise in the branch scores
    monotone_branch_scores: bool = True

    def __post_init__(self) -> None:
        if self.inner_folds < 2:
            raise ValueError(f"stack.lightgbm.inner_folds must be at least 2, got {self.inner_folds}")


@dataclass
class StackConfig:
    # branch name -> folder holding its oof.csv / val_pred.csv / test_pred.csv (relative to
    # the run folder, or absolute); empty means every branch the run folder holds
    branches: dict[str, str] = field(default_factory=dict)
    use_metadata: bool = True  # add cheap manifest columns (faces found, detection confidence, ...)
    # method written to the submission: "auto" = the simplest method (mean, rank_mean, logistic, lightgbm,
    # then one branch alone) whose mean fold AUC of the stacked OOF is within one standard error of the best;
    # else one of
    # <branch>_only, mean, rank_mean, logistic, lightgbm
    method: str = "auto"
    pred_column: str = "y_pred"  # submission's score column (some challenge phases used "score")
    logistic_c: float = 1.0
    lightgbm: LightGBMParams = field(default_factory=LightGBMParams)
    # operating points stored for `mmdf predict`: the chosen method's score threshold reaching
    # each false-positive rate on the stacked OOF (see mmdf.stack.calibration)
    target_fprs: list[float] = field(default_factory=lambda: [0.001, 0.01])
    default_fpr: float = 0.01  # the one `mmdf predict` decides with unless --fpr names another

    def __post_init__(self) -> None:
        if not self.target_fprs or not all(0 < f < 1 for f in self.target_fprs):
            raise ValueError(f"stack.target_fprs must be false-positive rates in (0, 1), got {self.target_fprs}")
        if self.default_fpr not in self.target_fprs:
            raise ValueError(f"stack.default_fpr={self.default_fpr} is not one of stack.target_fprs "
                             f"{self.target_fprs}")
