"""The visual statistics branch: colour, sharpness and high-frequency energy of the face against its
surround, the fine texture's radial profile from the face centre (a swap's blurred inner face and its
blending seam), and their flicker over the clip (:mod:`mmdf.stats.visual`) -> a statistics model.
Config section ``train.visual_stats``."""

from __future__ import annotations

from mmdf.train.branches.statistics import StatsBranch


class VisualStatsBranch(StatsBranch):
    name = "visual_stats"
    describe = "statistics of the face crops"
    status_col = "visual_status"
    file_col = "faces_file"
    prepare_keys = ("faces",)
    stats_kind = "visual"


BRANCH = VisualStatsBranch()
