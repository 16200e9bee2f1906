"""`tasks gate`: the blessing (TFX Evaluator style) that decides whether a candidate may serve.

Blessed when the candidate's test macro-F1 is >= the champion's minus a tolerance (a retrain
on a little more data may score a hair lower), >= the LogReg baseline's (fit by evaluate on
the same data; no tolerance: a model that a linear one beats on test should not serve), AND
>= an absolute floor (or when forced). Every reason is logged, written to blessing.json next to
metrics.json and appended to the model card. Not blessed -> CLI exit code 5 ("skipped":
downstream publishing does not run).
"""
from __future__ import annotations

import logging
from pathlib import Path

from tasks.fsutil import atomic_write_text
from tasks.rundir import MODEL_CARD, Evaluation

log = logging.getLogger(__name__)
TOLERANCE, FLOOR = 0.01, 0.1  # the defaults (include/settings.py and the CLI use these)


def bless(metrics: dict, tolerance: float = TOLERANCE, floor: float = FLOOR, force: bool = False) -> dict:
    models = metrics["models"]
    cand = models["candidate"]["macro_f1"]
    champ = models.get("champion", {}).get("macro_f1")
    base = models.get("baseline", {}).get("macro_f1")
    reasons = []
    ok_floor = cand >= floor
    reasons.append(f"candidate macro-F1 {cand:.4f} {'>=' if ok_floor else '<'} floor {floor:.4f}")
    ok_others = True
    for name, other, tol in (("champion", champ, tolerance), ("LogReg baseline", base, 0.0)):  # same test rows
        if other is None:
            reasons.append(f"no {name} to compare with")
            continue
        ok = cand >= other - tol
        ok_others &= ok
        reasons.append(f"candidate {cand:.4f} {'>=' if ok else '<'} {name} {other:.4f}"
                       + (f" - tolerance {tol:.4f}" if tol else ""))
    passed = ok_floor and ok_others
    if force and not passed:
        reasons.append("forced by the force_promote param")
    return {"blessed": passed or force, "passed": passed, "candidate_macro_f1": cand, "champion_macro_f1": champ,
            "baseline_macro_f1": base, "tolerance": tolerance, "floor": floor, "forced": force, "reasons": reasons}


def gate(metrics_json: Path, tolerance: float = TOLERANCE, floor: float = FLOOR, force: bool = False) -> dict:
    ev = Evaluation(Path(metrics_json).parent)
    b = bless(ev.metrics(), tolerance, floor, force)
    ev.write_blessing(b)
    card = ev.path / MODEL_CARD
    if card.is_file():  # the card says why the candidate serves or not
        verdict = ("not blessed: the champion keeps serving" if not b["blessed"]
                   else "blessed" if b["passed"] else "blessed, forced by force_promote")
        text = card.read_text().split("\n\n## Gate:")[0].rstrip("\n")  # a retried gate replaces its section
        atomic_write_text(card, text + f"\n\n## Gate: {verdict}\n\n"
                          + "".join(f"- {r}\n" for r in b["reasons"]))
    for r in b["reasons"]:
        log.info("gate: %s", r)
    log.log(logging.INFO if b["blessed"] else logging.WARNING, "gate: candidate %s",
            "BLESSED" if b["blessed"] else "NOT blessed: the champion keeps serving")
    return b
