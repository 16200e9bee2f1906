"""warcov_retrain_now: retrain on the current dataset with other params, no new drop needed.

Trigger it from the UI ("Trigger" with the params form: epochs, lr, batch size, hidden size,
window of drops, force_promote, gate tolerance...). It trains on the drops ingested so far
(dataset/drops; all of them unless window_drops), then
takes the same model and serving steps as warcov_retrain (include/training.py):

prepare -> [model] train -> evaluate -> gate
        -> [serving] export_onnx -> convert_tensorrt -> publish -> reload -> promote

A separate DAG, so the continuous warcov_retrain run (waiting for the next drop) never blocks
it. The gate still decides: a candidate worse than the champion is not served unless
force_promote.
"""
from __future__ import annotations

from airflow.sdk import dag, task

from include import drops, settings, training
from tasks import layout  # stdlib only

S = settings.load()


@dag(
    schedule=None,  # manual only
    doc_md=__doc__,
    **training.dag_kwargs(S),
)
def warcov_retrain_now():
    @task(multiple_outputs=True)  # one XCom per path: the steps take them as XComArgs
    def prepare() -> dict:
        """A run directory for this retraining, once there is a dataset to train on."""
        from airflow.sdk.exceptions import AirflowFailException
        data = layout.dataset_drops(S.dataset)
        if not data.is_dir() or not any(data.iterdir()):
            raise AirflowFailException(f"no dataset yet at {data}: drop a labeled drop into "
                                       f"{S.inbox} first (warcov_retrain ingests it)")
        return drops.new_run(S, "retrain-now")

    training.steps(S, prepare())


warcov_retrain_now()
