"""Model families (tasks/model.py): each trains, keeps its family in the run dir, loads back
without pickle, exports an ONNX graph that matches PyTorch on the check rows, and is a
choice of the CLI and of the DAGs' trigger form."""
import numpy as np
import pytest
import torch

from tasks import model as mdl, synth
from tasks.export_onnx import export_onnx
from tasks.recipe import FAMILIES, KNOBS, TrainConfig
from tasks.rundir import RunDir
from tasks.train import train


@pytest.fixture(scope="module")
def drop(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    synth.write_labeled(root / "d", "d", rows=3000, seed=5)
    return root


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_loads_and_exports_with_parity(drop, family):
    run = drop / f"run-{family}"
    train([drop / "d"], run, TrainConfig(max_epochs=2, family=family, hidden=32), tracking_uri="none")
    assert RunDir(run).model_config()["family"] == family
    model = mdl.load(run)
    layers = {type(m).__name__ for m in model.modules()}
    assert ("LayerNorm" in layers) == (family == "resmlp")
    assert (sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 1) == (family == "linear")
    r = export_onnx(run, tracking_uri="none")
    assert r["ok"] and r["max_abs_diff"] <= 1e-4


def test_a_run_dir_from_before_families_loads_as_mlp(drop):
    run = drop / "run-mlp"
    if not run.exists():
        train([drop / "d"], run, TrainConfig(max_epochs=1, hidden=32), tracking_uri="none")
    cfg = RunDir(run).model_config()
    cfg.pop("family"), cfg.pop("depth")
    RunDir(run).write_model_config(cfg)  # as written before this field existed
    model = mdl.load(run)
    assert model.cfg.family == "mlp"
    out = mdl.predict_proba(model, np.zeros((2, 512), np.float32), np.zeros((2, 768), np.float32))
    assert out.shape == (2, 50)


def test_an_unknown_family_is_refused_and_the_form_offers_the_families():
    with pytest.raises(ValueError, match="family must be one of"):
        TrainConfig.from_overrides({"family": "transformer"})
    knob = next(k for k in KNOBS if k.name == "family")
    assert knob.form and knob.json_schema()["enum"] == list(FAMILIES) and knob.default == "mlp"
