"""``linlab explore``: one self-contained HTML page where sliders re-run gradient descent.

For the squared loss an epoch needs only the statistics of the data, so the page embeds
them (:func:`explorer_stats`, never the rows) and trains in the browser, in float64, with
the same arithmetic as linlab's statistics path: every change of a control re-runs the
whole training and redraws the charts (uPlot, inlined).
"""

from .page import MOMENTUM, explorer_html, explorer_stats, write_explorer

__all__ = ["MOMENTUM", "explorer_html", "explorer_stats", "write_explorer"]
