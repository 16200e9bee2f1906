"""Metrics against a small example worked out by hand."""
import numpy as np
import pytest

from tasks import metrics

#            post:   0       1       2       3
Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
P = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.8], [0.1, 0.6]], dtype=np.float32)
# at 0.5 the predictions are [[1,0],[1,1],[0,1],[0,1]]


def test_metrics_match_hand_computation():
    m = metrics.compute(Y, P, 0.5, ["a", "b"])
    # exact match: post 0 only -> 1/4; label-wise: bits right 2+1+1+1 = 5 of 8
    assert m["exact_match_accuracy"] == pytest.approx(0.25)
    assert m["label_accuracy"] == pytest.approx(5 / 8)
    # class a: TP=1 (post 0), FP=1 (post 1), FN=1 (post 2) -> P=R=F1=0.5
    # class b: TP=2 (posts 1, 2), FP=1 (post 3), FN=0 -> P=2/3, R=1, F1=0.8
    a, b = m["per_class"]
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["macro_recall"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(0.65)
    # micro: TP=3, FP=2, FN=1 -> P=3/5, R=3/4, F1=2/3
    assert (m["micro_precision"], m["micro_recall"], m["micro_f1"]) == pytest.approx((0.6, 0.75, 2 / 3))
    # average precision, class a: ranks 0.9(+) 0.6(-) 0.4(+) 0.1(-) -> (1/2)*1 + (1/2)*(2/3) = 5/6
    # class b: ranks 0.8(+) 0.7(+) 0.6(-) 0.2(-) -> 1.0; macro = 11/12
    assert m["macro_pr_auc"] == pytest.approx(11 / 12)


def test_per_class_thresholds():
    m = metrics.compute(Y, P, np.array([0.35, 0.65]), ["a", "b"])
    # class a at 0.35: predicts posts 0,1,2 -> TP 2, FP 1 -> F1 0.8; class b at 0.65: posts 1,2 -> F1 1.0
    assert m["macro_f1"] == pytest.approx(0.9)


def test_tuned_thresholds_maximise_f1_per_class():
    thr = metrics.tune_thresholds(Y, P)
    # a cannot be separated: its best is 0.4 (posts 0,1,2 -> F1 0.8); b separates at 0.7 (F1 1.0)
    assert thr == pytest.approx([0.4, 0.7])
    assert metrics.macro_f1(Y, P, thr) == pytest.approx(0.9)


def test_a_class_without_positives_keeps_the_default():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.3], [0.2, 0.9], [0.7, 0.1]], dtype=np.float32)
    assert metrics.tune_thresholds(y, p)[1] == pytest.approx(0.5)
