"""Ablation experiments: variants of the pipeline run side by side and compared."""
