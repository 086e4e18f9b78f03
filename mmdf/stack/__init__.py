"""LightGBM stacking of the branches, baselines, submission and report."""
