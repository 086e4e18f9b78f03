"""What an analyst sees: one self-contained HTML page per clip, and an index of the clips.

A page holds everything inline (pictures as data URIs, no network, no
script): the verdict, the calibrated probability and the threshold at the
chosen false-positive rate, each branch's score and contribution, and a
timeline of the clip drawn with matplotlib: one row per branch that scores
parts of a clip (:class:`mmdf.train.branches.base.Segments`), each part at
its time with its probability, the branch's part threshold dashed and the
parts above it shaded red; then the face crops at their times with their
scores (a red frame above the threshold) and the mouth-voice lag curve. The
index lists the clips, sorted by score (a click on a column header sorts by
it: a few lines of plain script, the only script anywhere).
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}
h1.fake{color:#b00}h1.real{color:#070}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3;cursor:pointer}
td:first-child,th:first-child{text-align:left}.faces{display:flex;flex-wrap:wrap;gap:6px}
figure.face{margin:0;padding:2px;border:3px solid #ccc;text-align:center;font-size:12px}
figure.face.marked{border-color:#d00}.note{color:#555;font-size:90%}img.plot{max-width:100%}"""

COLOURS = {"visual": "#1f77b4", "audio": "#2ca02c", "sync": "#9467bd"}


def png_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_uri(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a JPEG data URI."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def timeline_figure(segments: dict, thresholds: dict, modality_of: dict):
    """One row per branch: each part a bar over its time span at its probability; above the threshold red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(segments)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.6 * len(names) + 0.4), sharex=True, squeeze=False)
    end = max(float(np.max(s.end_s)) for s in segments.values())
    for ax, b in zip(axes[:, 0], names):
        seg, thr, colour = segments[b], thresholds.get(b, np.nan), COLOURS.get(modality_of[b], "#444")
        for start, stop, p in zip(seg.start_s, seg.end_s, seg.score):
            above = np.isfinite(thr) and p > thr
            if above:
                ax.axvspan(start, stop, color="#f4b6b6", alpha=0.5, lw=0)
            ax.hlines(p, start, stop, colors="#c00" if above else colour, lw=3)
        ax.plot((seg.start_s + seg.end_s) / 2, seg.score, "o", ms=3, color=colour)
        if np.isfinite(thr):
            ax.axhline(thr, ls="--", lw=1, color="#c00")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{b}\n({modality_of[b]})", rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlim(0, end * 1.01)
    axes[-1, 0].set_xlabel("seconds into the clip (red: above the branch's threshold, dashed)")
    return fig


def lag_figure(curve):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, label = curve
    fig, ax = plt.subplots(figsize=(5, 2.2))
    ax.plot(x, y, "-o", ms=2, color=COLOURS["sync"])
    ax.axvline(0, color="#888", lw=1)
    if np.isfinite(y).any():
        ax.axvline(x[int(np.nanargmax(y))], color="#c00", ls="--", lw=1)
    ax.set_xlabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _faces_html(segments: dict, thresholds: dict) -> str:
    cells = []
    for b, seg in segments.items():
        if seg.images is None:
            continue
        thr = thresholds.get(b, np.nan)
        for img, t, p in zip(seg.images, seg.start_s, seg.score):
            marked = " marked" if np.isfinite(thr) and p > thr else ""
            cells.append(f'<figure class="face{marked}"><img src="{image_uri(img)}" width="96" height="96" '
                         f'alt="face at {t:.2f} s"><figcaption>{t:.2f} s<br>{b} {p:.2f}</figcaption></figure>')
    return f'<h2>Faces</h2><div class="faces" id="faces">{"".join(cells)}</div>' if cells else ""


def _branch_table(row: pd.Series, branches: list[str], segments: dict, thresholds: dict, unit: str) -> str:
    lines = []
    for b in branches:
        prob, contrib = row.get(f"{b}_prob"), row.get(f"{b}_contrib")
        seg = segments.get(b)
        marked = "" if seg is None else f"{int((seg.score > thresholds.get(b, np.inf)).sum())} of {len(seg.score)}"
        lines.append(f"<tr><td>{html.escape(b)}</td><td>{'-' if pd.isna(prob) else f'{prob:.3f}'}</td>"
                     f"<td>{'-' if pd.isna(contrib) else f'{contrib:+.3f}'}</td><td>{marked}</td></tr>")
    return ("<table id=\"branches\"><tr><th>branch</th><th>probability</th>"
            f"<th>contribution ({html.escape(unit)})</th><th>parts above its threshold</th></tr>"
            + "".join(lines) + "</table>")


def clip_page(row: pd.Series, segments: dict, thresholds: dict, branches: list[str], unit: str,
              modality_of: dict) -> str:
    """The page of one scored clip (a row of `mmdf predict`'s output) as HTML text."""
    decision = str(row["decision"])
    title = html.escape(str(row["video_name"]))
    head = (f'<h1 id="verdict" class="{decision}">{decision.upper()}: probability of a deepfake '
            f'{row["prob"]:.1%}</h1><p>{title} &mdash; stacked score {row["score"]:.3f} against the threshold '
            f'{row["threshold"]:.3f} set for a false-positive rate of {row["target_fpr"]:g} on the run\'s '
            f'out-of-fold scores.</p><p id="reason">{html.escape(str(row["reason"]))}</p>')
    parts = [head, _branch_table(row, branches, segments, thresholds, unit)]
    if segments:
        parts.append(f'<h2>Timeline</h2><img class="plot" id="timeline" alt="timeline" '
                     f'src="{png_uri(timeline_figure(segments, thresholds, modality_of))}">')
        parts.append(_faces_html(segments, thresholds))
        curves = [s.curve for s in segments.values() if s.curve is not None]
        if curves:
            parts.append(f'<h2>Mouth and voice</h2><img class="plot" id="lag" alt="lag curve" '
                         f'src="{png_uri(lag_figure(curves[0]))}">')
        notes = "".join(f"<li>{html.escape(b)}: {html.escape(s.how)}; threshold "
                        f"{thresholds.get(b, np.nan):.3f}</li>" for b, s in segments.items())
        parts.append(f'<h3>How the parts were scored</h3><ul class="note">{notes}</ul>')
    else:
        parts.append('<p class="note" id="timeline">No branch could score parts of this clip in time.</p>')
    return _document(f"mmdf: {title}", "".join(parts))


SORTER = """<script>document.querySelectorAll('th').forEach((th,i)=>th.onclick=()=>{const t=th.closest('table'),
r=[...t.rows].slice(1),n=r.every(x=>!isNaN(parseFloat(x.cells[i].textContent))),d=th.dataset.d=-(th.dataset.d||1);
r.sort((a,b)=>d*(n?parseFloat(a.cells[i].textContent)-parseFloat(b.cells[i].textContent)
:a.cells[i].textContent.localeCompare(b.cells[i].textContent))).forEach(x=>t.appendChild(x));});</script>"""


def index_page(rows: pd.DataFrame, auc: pd.DataFrame | None, note: str = "") -> str:
    """The index: one line per clip (``page`` links its page), sorted by score; segment AUCs where known."""
    rows = rows.sort_values("score", ascending=False, na_position="last")
    lines = []
    for _, r in rows.iterrows():
        name = html.escape(str(r["video_name"]))
        link = f'<a href="{html.escape(str(r["page"]))}">{name}</a>' if isinstance(r.get("page"), str) else name
        prob = "" if pd.isna(r["prob"]) else f"{r['prob']:.3f}"
        score = "" if pd.isna(r["score"]) else f"{r['score']:.4f}"
        lines.append(f"<tr><td>{link}</td><td>{score}</td><td>{prob}</td><td>{html.escape(str(r['decision'] or ''))}"
                     f"</td><td style=\"text-align:left\">{html.escape(str(r['reason']))}</td></tr>")
    table = ("<table id=\"clips\"><tr><th>clip</th><th>score</th><th>probability</th><th>decision</th>"
             "<th style=\"text-align:left\">reason</th></tr>" + "".join(lines) + "</table>")
    body = f"<h1>mmdf: {len(rows)} clip(s)</h1><p class=\"note\">{html.escape(note)}</p>{table}"
    if auc is not None and len(auc):
        body += "<h2>Segment-level AUC per modality</h2>" + auc.to_html(index=False, float_format="%.3f",
                                                                           table_id="segment_auc")
    return _document("mmdf: clips", body + SORTER)


def _document(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
