"""The training-to-serving steps, shared by warcov_retrain (a new drop) and
warcov_retrain_now (the current dataset, from the UI): one declaration of the steps, their
params and their wiring.

  [model]   train -> evaluate -> gate
  [serving] export_onnx -> convert_tensorrt -> publish -> reload -> promote

`paths` is the XComArg of the task that made the run directory (claim or prepare, with
multiple_outputs): every path a step passes on comes from tasks.rundir.RunPaths through it.
The recipe's params and their defaults come from tasks/recipe.py. Task groups only group the
graph; task ids stay plain (prefix_group_id=False).
"""
from __future__ import annotations

from airflow.sdk import Asset, Param, TaskGroup

from include import docker_task
from include.settings import Settings
from tasks import layout  # stdlib only
from tasks.commands import argv  # stdlib only: the commands' declarations
from tasks.recipe import KNOBS

CHAMPION = Asset(name="social_tone_champion", uri="file:///social-tone/champion")


def params(s: Settings) -> dict[str, Param]:
    return {
        **{k.name: Param(k.default, **k.json_schema()) for k in KNOBS if k.form},
        "force_promote": Param(False, type="boolean", description="serve the candidate even if the gate says no"),
        "skip_tensorrt": Param(False, type="boolean"),
        "tensorrt_fp16": Param(False, type="boolean", description="FP16 TensorRT plan (GPU hosts; looser canary)"),
        "gate_tolerance": Param(s.gate_tolerance, type="number", minimum=0),
        "gate_floor": Param(s.gate_floor, type="number", minimum=0),
    }


def dag_kwargs(s: Settings) -> dict:
    """What both retraining DAGs declare alike: one run at a time, no catchup, the params form,
    a failure alert (include/notify.py), and a pause after SOCIAL_TONE_MAX_FAILED_RUNS failed runs."""
    import pendulum

    from include.notify import RunFailed
    return {"start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False, "max_active_runs": 1,
            "tags": ["social-tone", "training"], "default_args": {"retries": 0}, "params": params(s),
            "on_failure_callback": RunFailed(s), "max_consecutive_failed_dag_runs": s.max_failed_runs}


def x(expr: str) -> str:
    return "{{ " + expr + " }}"


def steps(s: Settings, paths) -> dict:
    """The steps, wired in order; returns them by task id (the caller wires what comes before
    train and after evaluate/promote). `paths`: XComArg of a dict from RunPaths.as_dict()."""
    data = str(layout.dataset_drops(s.dataset))
    recipe = {k.flag[2:].replace("-", "_"): x(f"params.{k.name}") for k in KNOBS if k.form}
    with TaskGroup("model", prefix_group_id=False, tooltip="train, evaluate against champion + baseline, gate"):
        train = docker_task.task(s, "train", argv("train", data=data, out=paths["model_dir"], run_name=paths["key"],
                                                  **recipe),
                                 writes=[s.runs, s.mlflow_dir], retries=1)
        evaluate = docker_task.task(s, "evaluate", argv(
            "evaluate", model_dir=paths["model_dir"], data=data, out=paths["eval"], champion_pointer=s.champion_pointer),
            writes=[s.runs, s.mlflow_dir], retries=1)
        gate = docker_task.task(s, "gate", argv(
            "gate", metrics=paths["metrics"], tolerance=x("params.gate_tolerance"), floor=x("params.gate_floor"),
            force=x("params.force_promote")),
            writes=[s.runs], network=False, skip_on_exit_code=docker_task.EXIT_SKIPPED)
    with TaskGroup("serving", prefix_group_id=False, tooltip="ONNX, TensorRT, Triton hot reload + canary, promote"):
        export = docker_task.task(s, "export_onnx", argv("export-onnx", model_dir=paths["model_dir"]),
                                  writes=[s.runs, s.mlflow_dir])
        tensorrt = docker_task.task(s, "convert_tensorrt", argv(
            "convert-tensorrt", model_dir=paths["model_dir"], skip=x("params.skip_tensorrt"), fp16=x("params.tensorrt_fp16"),
            require_gpu=s.gpu),
            writes=[s.runs], network=False, gpu=True, skip_on_exit_code=docker_task.EXIT_SKIPPED)
        # the model export wrote (not the claim's XCom: with the claim as a direct upstream, this
        # trigger rule would also fire on the quarantine path); the record goes to RunPaths' place
        publish = docker_task.task(s, "publish", argv(
            "publish", model_dir=export.output["model_dir"], repo=s.triton_repo, model=s.model_name, backend=s.triton_backend,
            gpu=s.gpu),
            writes=[s.runs, s.triton_repo], network=False, trigger_rule="none_failed_min_one_success")
        reload = docker_task.task(s, "reload", argv(
            "reload", model_dir=paths["model_dir"], repo=s.triton_repo, model=s.model_name, url=s.triton_grpc,
            expect_version_file=paths["published"]),
            writes=[s.triton_repo], triton_admin=True, retries=2)
        promote = docker_task.task(s, "promote", argv(
            "promote", model_dir=paths["model_dir"], pointer=s.champion_pointer, version_file=paths["published"],
            metrics=paths["metrics"]),
            writes=[s.runs, s.state, s.mlflow_dir], outlets=[CHAMPION], retries=1,
            lineage_extra=paths["model_dir"])
    train >> evaluate >> gate >> export >> tensorrt >> publish >> reload >> promote
    export >> publish  # publish runs when TensorRT is skipped (no GPU), not when export was
    return {t.task_id: t for t in (train, evaluate, gate, export, tensorrt, publish, reload, promote)}
