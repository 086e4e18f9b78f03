"""The sync statistics branch: how the mouth moves with the voice and how the mouth region differs from
the upper face, without training (:mod:`mmdf.stats.sync`) -> a statistics model. Section ``train.sync_stats``."""

from __future__ import annotations

from mmdf.train.branches.statistics import StatsBranch


class SyncStatsBranch(StatsBranch):
    name = "sync_stats"
    describe = "mouth-voice agreement and mouth-region artefacts"
    status_col = "sync_status"
    file_col = "sync_file"
    prepare_keys = ("sync", "faces")  # the window's faces are found with the face detector's settings
    stats_kind = "sync"
    report_features = ("open_at0", "band_at0", "motion_at0", "open_offset", "log_sharpness_ratio_mean",
                       "log_hf_ratio_mean", "colour_distance_mean", "colour_distance_jitter")


BRANCH = SyncStatsBranch()
