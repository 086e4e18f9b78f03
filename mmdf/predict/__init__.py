"""Scoring new clips with a trained run."""
