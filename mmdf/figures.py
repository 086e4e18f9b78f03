"""Figure and table helpers every report uses: a headless matplotlib, atomic PNGs, markdown tables.

They live below the layers that draw (a branch's own figures, the stack's
report, the audit, an experiment's summary), so that none of those imports another
to borrow them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmdf.files import atomic_write


def pyplot():
    """matplotlib without a display (runs on servers and in workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write atomically as PNG, and free the figure."""
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
    return path


def plot_by_kind(table: pd.DataFrame, path: Path) -> Path:
    """Box plots of each column of ``table`` per value of its ``kind`` column (real first), one panel each."""
    plt = pyplot()
    table = table[table["kind"].notna()]
    kinds = ["real", *sorted(k for k in table["kind"].unique() if k != "real")]
    columns = [c for c in table.columns if c != "kind"]
    n_cols = min(4, len(columns))
    n_rows = -(-len(columns) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.0 * n_rows), squeeze=False)
    for ax, col in zip(axes.ravel(), columns):
        data = [table.loc[table["kind"] == k, col].dropna().to_numpy() for k in kinds]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(kinds) + 1), [k.replace("fake_", "") for k in kinds], rotation=30)
        ax.set_title(col, fontsize=9)
    for ax in axes.ravel()[len(columns):]:
        ax.axis("off")
    return save_figure(fig, path)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A GitHub markdown table (pandas' ``to_markdown``); missing values show as ``-``."""
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="-")
