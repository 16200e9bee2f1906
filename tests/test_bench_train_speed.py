"""bench/train_speed.py's --variant: our defaults with typed TrainConfig overrides, checked."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import train_speed  # noqa: E402

from tasks.recipe import TrainConfig  # noqa: E402


def test_a_variant_is_the_defaults_with_typed_overrides():
    name, cfg, over = train_speed.variant("strong:candidates=strong,race_steps=100,select_margin=0.01,"
                                          "tune_thresholds=false")
    assert name == "strong" and over == {"candidates": "strong", "race_steps": 100, "select_margin": 0.01,
                                         "tune_thresholds": False}
    assert cfg == TrainConfig(candidates="strong", race_steps=100, select_margin=0.01, tune_thresholds=False)


@pytest.mark.parametrize("spec, error", [("x:nope=1", "is no TrainConfig field"), ("seed:lr=1", "other than"),
                                         (":lr=1", "other than"), ("x:candidates=bogus", "candidates must be"),
                                         ("x:budget_steps=many", "budget_steps='many': not a int"),
                                         ("x:tune_thresholds=yes", "not a bool")])
def test_a_bad_variant_is_refused_by_name(spec, error):
    with pytest.raises((SystemExit, ValueError), match=error):
        train_speed.variant(spec)
