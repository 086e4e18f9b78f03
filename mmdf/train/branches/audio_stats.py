"""The audio statistics branch: per-band level statistics, spectral shape, band cut-off and silence of
the cached mel image (:mod:`mmdf.stats.audio`) -> a statistics model. Config section ``train.audio_stats``."""

from __future__ import annotations

import pandas as pd

from mmdf.stats.audio import model_columns
from mmdf.train.branches.statistics import StatsBranch


class AudioStatsBranch(StatsBranch):
    name = "audio_stats"
    describe = "statistics of the mel image"
    status_col = "audio_status"
    file_col = "mel_file"
    prepare_keys = ("mel",)
    stats_kind = "audio"

    def model_inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        """All but the per-band levels, which let a model learn the training speakers (see ``model_columns``)."""
        return table[model_columns(table.columns)]


BRANCH = AudioStatsBranch()
