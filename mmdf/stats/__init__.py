"""Hand-made statistics of the cached features, and a small model on them.

On a few hundred clips a CNN trained from scratch learns less than a linear
or tree model on a few hundred well-chosen numbers: the vocoder's band
cut-off and low-band behaviour in the mel image, the colour, sharpness and
flicker of a pasted face against its surround. ``audio`` and ``visual`` compute
them from the arrays ``mmdf prepare`` caches (nothing is decoded again),
``table`` makes one row per manifest row (cached in a parquet file), and
``model`` is the learner: logistic regression or a small LightGBM, chosen by
nested cross-validation, saved as JSON.

The package itself imports nothing, so that a module needing the statistics
does not pay for scikit-learn, which only ``model`` imports.
"""
