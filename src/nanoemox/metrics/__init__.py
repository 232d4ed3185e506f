"""Benchmark metrics for the six affective tasks; every score is a fraction in [0, 1].

- `wheel_cluster`, `hit_rate`, `ov_fscore`: emotion-wheel metrics of MER-UniBench;
- `sentiment_waf`: MSA weighted F1 / accuracy;
- `intent_scores`: MIntRec / MIntRec2.0 accuracy, weighted F1, weighted precision;
- `erg_scores`, `distinct_n`: AvaMERG emotion accuracy, coarse hit rate, Dist-1/2.

See docs/metrics.md for how each matches the reference implementation.
"""

from nanoemox.metrics.classification import intent_scores, sentiment_value, sentiment_waf
from nanoemox.metrics.emotion import hit_rate, ov_fscore
from nanoemox.metrics.erg import distinct_n, erg_scores, strip_think
from nanoemox.metrics.wheel import WHEELS, WheelTables, load_tables, wheel_cluster

__all__ = [
    "WHEELS",
    "WheelTables",
    "distinct_n",
    "erg_scores",
    "hit_rate",
    "intent_scores",
    "load_tables",
    "ov_fscore",
    "sentiment_value",
    "sentiment_waf",
    "strip_think",
    "wheel_cluster",
]
