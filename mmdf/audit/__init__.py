"""Robustness audit of a finished run: how its scores move under everyday perturbations
(re-encoding, resizing, resampling, noise, silence edits) and which cheap cue alone
separates the split (a shortcut the models may lean on). ``mmdf audit`` is the entry point.
"""
