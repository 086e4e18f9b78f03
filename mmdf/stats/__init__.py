"""Hand-made statistics of the cached features, and a small model on them.

On a few hundred clips a CNN trained from scratch learns less than a linear
or tree model on a few hundred well-chosen numbers: the vocoder's band
cut-off and low-band behaviour in the mel image, the colour, sharpness and
flicker of a pasted face against its surround. ``audio`` and ``visual`` compute
them from the arrays ``mmdf prepare`` caches (nothing is decoded again),
``table`` makes one row per manifest row (cached in a parquet file), and
``model`` is the learner: logistic regression or a small LightGBM, chosen by
nested cross-validation, saved as JSON.
"""

from mmdf.stats.audio import audio_features
from mmdf.stats.model import StatsModel
from mmdf.stats.table import stats_table
from mmdf.stats.visual import visual_features

__all__ = ["StatsModel", "audio_features", "stats_table", "visual_features"]
