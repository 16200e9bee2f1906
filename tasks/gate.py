"""`tasks gate`: the blessing (TFX Evaluator style) that decides whether a candidate may serve.

Blessed when the candidate's test macro-F1 is >= the champion's minus a tolerance AND >= an
absolute floor (or when forced). Every reason is logged and written to blessing.json next
to metrics.json. Not blessed -> CLI exit code 5 ("skipped": downstream publishing does not run).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tasks.fsutil import atomic_write_json
from tasks.rundir import BLESSING

log = logging.getLogger(__name__)


def bless(metrics: dict, tolerance: float = 0.01, floor: float = 0.1, force: bool = False) -> dict:
    models = metrics["models"]
    cand = models["candidate"]["macro_f1"]
    champ = models.get("champion", {}).get("macro_f1")
    reasons = []
    ok_floor = cand >= floor
    reasons.append(f"candidate macro-F1 {cand:.4f} {'>=' if ok_floor else '<'} floor {floor:.4f}")
    if champ is None:
        ok_champ = True
        reasons.append("no champion to compare with")
    else:
        ok_champ = cand >= champ - tolerance
        reasons.append(f"candidate {cand:.4f} {'>=' if ok_champ else '<'} champion {champ:.4f} - tolerance "
                       f"{tolerance:.4f}")
    blessed = (ok_floor and ok_champ) or force
    if force and not (ok_floor and ok_champ):
        reasons.append("forced by the force_promote param")
    return {"blessed": blessed, "candidate_macro_f1": cand, "champion_macro_f1": champ, "tolerance": tolerance,
            "floor": floor, "forced": force, "reasons": reasons}


def gate(metrics_json: Path, tolerance: float = 0.01, floor: float = 0.1, force: bool = False) -> dict:
    metrics_json = Path(metrics_json)
    b = bless(json.loads(metrics_json.read_text()), tolerance, floor, force)
    atomic_write_json(metrics_json.parent / BLESSING, b)
    for r in b["reasons"]:
        log.info("gate: %s", r)
    log.log(logging.INFO if b["blessed"] else logging.WARNING, "gate: candidate %s",
            "BLESSED" if b["blessed"] else "NOT blessed: the champion keeps serving")
    return b
