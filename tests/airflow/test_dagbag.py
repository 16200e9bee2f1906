"""DAG files import cleanly, light, with the expected graph."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

RETRAIN = ["wait_for_drop", "claim", "not_duplicate", "validate", "route", "quarantine", "ingest", "train",
           "evaluate", "gate", "export_onnx", "convert_tensorrt", "publish", "reload", "promote", "archive"]


def dagbag():
    from airflow.dag_processing.dagbag import DagBag
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors_and_the_expected_graph():
    bag = dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["warcov_retrain"]
    assert sorted(dag.task_ids) == sorted(RETRAIN)
    t = dag.task_dict
    assert t["wait_for_drop"].deferrable and dag.max_active_runs == 1
    assert t["route"].downstream_task_ids == {"ingest", "quarantine"}
    chain = ["ingest", "train", "evaluate", "gate", "export_onnx", "convert_tensorrt", "publish", "reload", "promote"]
    for a, b in zip(chain, chain[1:]):
        assert b in t[a].downstream_task_ids, (a, b)
    assert t["gate"].skip_on_exit_code == [5] and t["convert_tensorrt"].skip_on_exit_code == [5]
    assert {"epochs", "lr", "batch_size", "force_promote", "skip_tensorrt", "tensorrt_fp16"} <= set(dag.params.keys())
    assert [o.name for o in t["promote"].outlets] == ["social_tone_champion"]
    # one factory: every Docker task mounts the data root read-only, and read-write only what it writes
    from airflow.providers.docker.operators.docker import DockerOperator
    docker = {i: t[i] for i in RETRAIN if isinstance(t[i], DockerOperator)}
    assert len(docker) == 10
    root = os.environ["SOCIAL_TONE_DATA_ROOT"]
    for i, d in docker.items():
        # validation of untrusted input sees processing/ (its drop alone) and the runs, not the dataset
        assert d.mounts[0]["Target"] == (root + "/processing" if i == "validate" else root), i
        assert d.mounts[0]["ReadOnly"] is True, i
        assert all(m["Target"].startswith(root + "/") and not m["ReadOnly"] for m in d.mounts[1:]), i
        assert d.auto_remove == "force" and d.mem_limit and d.execution_timeout, i
        assert {k: d.hardening[k] for k in ("cap_drop", "security_opt", "read_only")} == {
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "read_only": True}, i
        assert d.hardening["pids_limit"] and d.hardening["nano_cpus"] >= 1e9 and "/tmp" in d.hardening["tmpfs"], i
        if os.stat(root).st_uid == 0:  # root owns the data root: the tasks still never run as root
            assert d.user == "10001:10001", i
    writes = {i: sorted(m["Target"][len(root) + 1:] for m in d.mounts[1:]) for i, d in docker.items()}
    assert writes["validate"] == ["runs"] and docker["validate"].network_mode == "none"
    assert writes["ingest"] == ["dataset", "dvc-remote"] and docker["ingest"].network_mode == "none"
    assert writes["reload"] == ["triton"] and docker["reload"].network_mode != "none"
    assert "SOCIAL_TONE_TRITON_ADMIN_SECRET" not in str(docker["reload"].environment)  # not rendered in the UI
    assert list(docker["reload"]._private_environment) == ["SOCIAL_TONE_TRITON_ADMIN_SECRET"]
    assert not any(d._private_environment for i, d in docker.items() if i != "reload")
    # the steps take the claimed run's paths as XComArgs (no templated xcom_pull strings)
    from airflow.sdk.definitions.xcom_arg import XComArg
    paths = {i: [(a.operator.task_id, a.key) for a in d.command if isinstance(a, XComArg)] for i, d in docker.items()}
    assert paths["train"] == [("claim", "model_dir"), ("claim", "key")] and "claim" in t["train"].upstream_task_ids
    assert paths["promote"] == [("claim", "model_dir"), ("claim", "published"), ("claim", "metrics")]
    # publish (trigger rule none_failed_min_one_success) takes export's output, so a claim that
    # went to quarantine never triggers it
    assert paths["publish"] == [("export_onnx", "model_dir")] and "claim" not in t["publish"].upstream_task_ids
    assert not any("xcom_pull" in str(d.command) for d in docker.values())
    # the trigger form's recipe params carry the defaults tasks/recipe.py declares
    from tasks.recipe import KNOBS
    assert {k.name: dag.params[k.name] for k in KNOBS if k.form} == {k.name: k.default for k in KNOBS if k.form}


def test_every_variable_the_tasks_read_is_forwarded():
    """tasks/env.py declares what the task code reads; the factory forwards every `step`
    variable to each container and every `secret` one privately (never rendered in the UI)."""
    import dataclasses
    from include import docker_task, settings
    from tasks import env
    s = dataclasses.replace(settings.load(), triton_execution_env="/opt/env", triton_admin_secret="a",
                            alert_webhook="http://127.0.0.1:9/hook", alert_command="true", mlflow_username="u",
                            mlflow_password="p")
    op = docker_task.task(s, "t", ["x"], triton_admin=True, alerts=True)
    declared = {src: {n for n, v in env.VARS.items() if v.source == src} for src in ("step", "secret")}
    assert declared["step"] <= set(op.environment), declared["step"] - set(op.environment)
    assert set(op._private_environment) == declared["secret"]
    assert not declared["secret"] & set(op.environment)


def test_daily_scoring_graph():
    dag = dagbag().dags["warcov_daily_scoring"]
    assert [t.task_id for t in dag.topological_sort()] == ["wait_for_day", "validate", "wait_for_model", "score",
                                                           "monitor"]
    assert dag.task_dict["wait_for_model"].filepath.endswith("state/champion.json")
    # days run side by side (today's wait never holds back another day); monitor goes in order
    assert dag.catchup and dag.max_active_runs > 1 and dag.task_dict["monitor"].depends_on_past
    assert not any(t.depends_on_past for i, t in dag.task_dict.items() if i != "monitor")
    wait = dag.task_dict["wait_for_day"]
    assert wait.soft_fail and wait.deferrable and wait.filepath.endswith("{{ ds }}/_SUCCESS")
    assert dag.task_dict["monitor"].command[-2:] == ["--dashboard", str(Path(os.environ["SOCIAL_TONE_DATA_ROOT"])
                                                                       / "monitoring" / "dashboard.html")]


def test_parse_is_fast_and_light():
    """No torch / lightning / onnx at parse time, and < 0.2 s per DAG file once Airflow's own
    modules are warm, as in the dag-processor that re-parses files all day (fresh process;
    the cold first parse, which mostly imports Airflow, is reported and capped at 1 s)."""
    code = (
        "import json, sys, logging; logging.disable(logging.CRITICAL)\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "def parse():\n"
        f"    bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "    assert not bag.import_errors, bag.import_errors\n"
        "    return [s.duration.total_seconds() if hasattr(s.duration, 'total_seconds') else s.duration"
        " for s in bag.dagbag_stats]\n"
        "cold = parse(); warm = min(max(parse()) for _ in range(3))\n"
        "heavy = [m for m in ('torch', 'lightning', 'onnx', 'onnxruntime', 'mlflow', 'sklearn') if m in sys.modules]\n"
        "tasks = sorted(m for m in sys.modules if m.split('.')[0] == 'tasks')\n"
        "print('RESULT', json.dumps({'heavy': heavy, 'files': len(cold), 'cold': max(cold), 'warm': warm, 'tasks': tasks}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    print(r)
    assert r["heavy"] == [] and r["files"] == 3
    # the DAG side uses only the stdlib modules of tasks/ that docker/Dockerfile.airflow copies
    copied = {"tasks", "tasks.rundir", "tasks.fsutil", "tasks.recipe", "tasks.env", "tasks.gate", "tasks.errors",
              "tasks.layout", "tasks.monitoring", "tasks.commands", "tasks.spike_params", "tasks.triton",
              "tasks.triton.repo"}
    dockerfile = (REPO / "docker" / "Dockerfile.airflow").read_text()
    def source(m):
        path = m.replace(".", "/")
        return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"
    assert set(r["tasks"]) <= copied and all(source(m) in dockerfile for m in copied)
    assert r["warm"] < 0.2, f"slowest DAG file parsed in {r['warm']:.3f} s"
    assert r["cold"] < 1.0


def test_tensorrt_step_gets_the_gpu_image_and_device_when_a_gpu_is_configured():
    """One factory decides: with SOCIAL_TONE_GPU the TensorRT step runs in the TensorRT image
    with every GPU, and publish puts the onnxruntime backend on KIND_GPU; without, nothing
    asks for a device (the step skips itself in the CPU image)."""
    code = (
        "import json, logging; logging.disable(logging.CRITICAL)\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"t = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['warcov_retrain'].task_dict\n"
        "from airflow.providers.docker.operators.docker import DockerOperator\nops = {i: o for i, o in t.items() if isinstance(o, DockerOperator)}\n"
        "print('RESULT', json.dumps({i: [o.image, [r['Capabilities'] for r in o.device_requests or []],\n"
        "                               o.command] for i, o in ops.items()}, default=repr))\n")

    def parse(**env):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, **env}).stdout
        return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])

    gpu = parse(SOCIAL_TONE_GPU="true", SOCIAL_TONE_TENSORRT_IMAGE="social-tone/tensorrt:latest")
    assert gpu["convert_tensorrt"][:2] == ["social-tone/tensorrt:latest", [[["gpu"]]]]
    assert "--fp16" in gpu["convert_tensorrt"][2] and "--model-dir" in gpu["convert_tensorrt"][2]
    assert {i for i, (image, devices, _) in gpu.items() if devices} == {"convert_tensorrt"}
    assert {image for i, (image, _, _) in gpu.items() if i != "convert_tensorrt"} == {"social-tone/task:latest"}
    assert gpu["publish"][2][gpu["publish"][2].index("--gpu") + 1] == "True"
    cpu = parse(SOCIAL_TONE_GPU="false")
    assert cpu["convert_tensorrt"][:2] == ["social-tone/task:latest", []]
    assert cpu["publish"][2][cpu["publish"][2].index("--gpu") + 1] == "False"


def test_every_command_the_dags_build_parses_with_the_real_cli():
    """The DAG side builds command lines from tasks/commands.py's declarations; here each Docker
    task's command, with its XComArgs and templates filled in, goes through the CLI's parser."""
    import re

    from airflow.providers.docker.operators.docker import DockerOperator
    from airflow.sdk.definitions.xcom_arg import XComArg

    from tasks.cli import build_parser
    parser, parsed = build_parser(), 0

    def fill(v, params):
        if isinstance(v, XComArg):
            return "/data/runs/k/x"
        return re.sub(r"\{\{ *params\.(\w+) *\}\}", lambda m: str(params[m.group(1)]),
                      str(v).replace("{{ ds }}", "2026-01-01"))
    for dag in dagbag().dags.values():
        for op in dag.tasks:
            if isinstance(op, DockerOperator):
                assert op.command[:3] == ["python3", "-m", "tasks"], op.task_id
                args = parser.parse_args([fill(v, dag.params) for v in op.command[3:]])  # exits 2 on a bad flag
                assert args.func.__name__ == "cmd_" + op.command[3].replace("-", "_"), op.task_id
                parsed += 1
    assert parsed == 21  # retrain 10, retrain_now 8, daily 3
