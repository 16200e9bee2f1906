"""Every `python -m tasks` command, declared once: its arguments with types, defaults and help.

tasks/cli.py builds its parser from these declarations, and the DAG side builds each task's
command line with `argv` from the same ones (a flag the CLI does not declare is an error when
the DAG is parsed, not in a container). Arguments that several commands take (--run, --repo,
--model, --url, --tracking-uri, --out, ...) are declared once below and shared; `Arg.but`
changes what differs (the help, whether it is required). Standard library only: the DAG side
imports this at parse time; defaults that live in heavier modules are read lazily (`Lazy`).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path
from typing import Any, Callable

from tasks import env


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A default read from another module when the parser is built: "module:NAME[.attr]"."""
    where: str

    def get(self) -> Any:
        module, _, name = self.where.partition(":")
        value = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
        return value


def flag(v: str) -> bool:
    """--force / --force true / --force False: lets a DAG template pass a param straight through."""
    if str(v).lower() in ("1", "true", "yes", "on"):
        return True
    if str(v).lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {v!r}")


@dataclasses.dataclass(frozen=True)
class Arg:
    name: str                       # "--metrics", or "drop" for a positional argument
    type: Callable | None = str
    default: Any = None
    required: bool = False
    help: str = ""
    choices: tuple | None = None
    nargs: str | None = None
    switch: bool = False            # a store_true flag (--no-fail)
    was: str | None = None          # its old name: refused, with a hint to the new one

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    def but(self, **changes) -> "Arg":
        return dataclasses.replace(self, **changes)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        default = self.default  # a Lazy one stays so until a command runs (resolve): parsing stays light
        if self.was:
            parser.add_argument(self.was, action=_Renamed, nargs="?", new=self.name, help=argparse.SUPPRESS)
        if self.switch:
            parser.add_argument(self.name, action="store_true", help=self.help)
        elif self.positional:
            parser.add_argument(self.name, type=self.type, help=self.help)
        else:
            kw = {"nargs": "?", "const": True} if self.type is flag else {"nargs": self.nargs}
            parser.add_argument(self.name, type=self.type, default=default, required=self.required,
                                choices=self.choices, help=self.help, **kw)


class _Renamed(argparse.Action):
    def __init__(self, *args, new: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was renamed: use {self.new} (the same value)")


@dataclasses.dataclass(frozen=True)
class Command:
    name: str                       # "gate", or "data checkout" for a nested command
    help: str
    args: tuple[Arg, ...]

    @property
    def handler(self) -> str:
        """The function in tasks/cli.py that runs it: cmd_<name>."""
        return "cmd_" + self.name.replace("-", "_").replace(" ", "_")


MODEL_NAME = env.get("SOCIAL_TONE_MODEL_NAME")
TRITON_URL = env.get("SOCIAL_TONE_TRITON_GRPC")

# -- shared arguments
MODEL_DIR = Arg("--model-dir", Path, required=True, was="--run",
                help="the model dir (runs/<key>/model, or the folder `train --out` wrote)")
REPO = Arg("--repo", Path, required=True, help="Triton's model repository")
MODEL = Arg("--model", default=MODEL_NAME, help="the model's name on Triton")
URL = Arg("--url", default=TRITON_URL, help="Triton's gRPC address (default $SOCIAL_TONE_TRITON_GRPC)")
TRACKING = Arg("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI; 'none' = off)")
OUT = Arg("--out", Path, required=True, help="where to write (atomically)")
DROP = Arg("drop", Path, help="a drop directory")
DATA = Arg("--data", Path, nargs="+", required=True, help="drops or folders of drops")
DATASET = Arg("--dataset", Path, required=True, help="the dataset root (drops in DATASET/drops/, DVC)")
METRICS = Arg("--metrics", Path, required=True, help="metrics.json from evaluate")
ATOL = Arg("--atol", float, help="parity tolerance")
MAX_BATCH = Arg("--max-batch", int, default=Lazy("tasks.triton.repo:MAX_BATCH"), help="= Triton's max_batch_size")
TIMEOUT = Arg("--timeout", float, default=120, help="seconds to wait for a load")
KIND = Arg("--kind", choices=("labeled", "unlabeled"), help="require this kind of drop")
SEED = Arg("--seed", int, default=42, help="seed for the posts")
DROP_ID = Arg("--drop-id", help="default: the --out folder name")
ROOT = Arg("--root", Path, required=True, help="the monitoring root (ROOT/YYYY-MM-DD/report.json)")
Z = Arg("--z", float, help="robust z-score for a spike")
FILE = Arg("--version-file", Path, help="... as recorded by publish --record")


def _knobs() -> tuple[Arg, ...]:
    from tasks.recipe import KNOBS  # stdlib only; defaults None: "not given", a --config file may set them
    return tuple(Arg(k.flag, k.type, None, choices=k.choices, help=f"{k.help} (default {k.default})") for k in KNOBS)


GROUPS = {"data": "the DVC-versioned dataset: `data checkout` restores a model's training data"}
_DAILY = "tasks.spike_params:DAILY."  # the daily monitor's defaults (the daily DAG's form shows the same)

COMMANDS = {c.name: c for c in (
    Command("synth", "write deterministic WarCov-like drops", (
        OUT.but(help="drop dir (labeled) or root of day dirs (scoring)"),
        KIND.but(choices=("labeled", "scoring"), default="labeled", help="a labeled drop or scoring days"),
        Arg("--rows", int, 70_252, help="rows (labeled) or rows per day (scoring)"), SEED,
        Arg("--world-seed", int, help="seed for the topics (default: 42 for scoring, --seed for labeled); keep it "
                                      "fixed across drops"),
        DROP_ID, Arg("--id-start", int, 0, help="first post number, so drops do not share ids"),
        Arg("--days", int, 7, help="scoring: number of days"),
        Arg("--start", default="2026-01-01", help="scoring: first day (YYYY-MM-DD)"))),
    Command("import-warcov", "convert the published WarCov files into a drop", (
        Arg("--img", Path, required=True), Arg("--txt", Path, required=True), Arg("--y", Path, required=True), OUT,
        DROP_ID, Arg("--names", Path, help="text file, one label name per line"),
        Arg("--align", choices=("strict", "truncate"), default="strict"),
        Arg("--id-column", help="CSV column holding post ids (else row numbers)"))),
    Command("validate", "check a drop against its manifest (never modifies it)", (
        DROP, Arg("--report", Path, help="write the JSON report here"), KIND,
        Arg("--no-fail", switch=True, help="exit 0 on an invalid drop (the report says it)"),
        Arg("--schema", Path, help="the dataset's schema.json: a labeled drop must match its dims and label names "
                                   "(absent: no check yet)"))),
    Command("train", "train the fusion model; writes a model dir", (
        DATA, OUT.but(help="model dir to write (replaced atomically)"),
        Arg("--config", Path, help="JSON of hyper-parameters (flags override it)"), *_knobs(),
        Arg("--loader", choices=("tensor", "dataloader")),
        Arg("--fixed-threshold", switch=True, help="no threshold tuning: 0.5 for every class"),
        TRACKING, Arg("--run-name"))),
    Command("evaluate", "candidate vs champion vs baseline on the test split", (
        MODEL_DIR.but(help="the candidate's model dir"), DATA, OUT.but(help="the evaluation dir"),
        Arg("--champion", Path, help="the champion's model dir, if any"),
        Arg("--champion-pointer", Path, help="or: champion.json written by promote"),
        Arg("--no-baseline", switch=True),
        Arg("--baseline-rows", int, Lazy("tasks.recipe:BASELINE_ROWS"),
            help="LogReg baseline: fit on a seeded sample of at most this many train rows"), TRACKING)),
    Command("export-onnx", "export ONNX and check parity against PyTorch on the run's check rows", (
        MODEL_DIR, OUT.but(required=False, help="default: MODEL_DIR/model.onnx"),
        Arg("--opset", int, help="default: what serving reads (tasks/export_onnx.py OPSET)"),
        ATOL.but(default=Lazy("tasks.parity:ONNX_ATOL")), TRACKING)),
    Command("ingest", "add a validated drop to the DVC-versioned dataset", (
        DROP, DATASET, Arg("--remote", Path, help="DVC remote dir to push to"),
        Arg("--validated", Path, help="the validation report: ingest only the manifest it validated (sha256); "
                                      "without it the drop is validated first"))),
    Command("gate", "bless a candidate vs the champion (exit 5 = not blessed)", (
        METRICS, Arg("--tolerance", float, Lazy("tasks.gate:TOLERANCE")),
        Arg("--floor", float, Lazy("tasks.gate:FLOOR")), Arg("--force", flag, False))),
    Command("promote", "champion pointer + MLflow registry alias 'champion'", (
        MODEL_DIR, Arg("--pointer", Path, required=True, help="champion.json to write"),
        Arg("--version", int, help="the Triton version now serving"), FILE, METRICS.but(required=False),
        Arg("--registered-model", default=MODEL_NAME, help="MLflow registry name (default: the model name)"),
        TRACKING)),
    Command("convert-tensorrt", "TensorRT plan + parity vs ONNX Runtime (exit 5 = skipped: no GPU)", (
        MODEL_DIR, Arg("--onnx", Path, help="default: MODEL_DIR/model.onnx"), OUT.but(required=False, help="default: MODEL_DIR/model.plan"),
        MAX_BATCH, Arg("--opt-batch", int, 256), Arg("--fp16", flag, False),
        Arg("--skip", flag, False, help="skip (exit 5) on request"),
        Arg("--require-gpu", flag, False, help="no GPU here is a failure (exit 4), not a skip (SOCIAL_TONE_GPU=true)"),
        ATOL.but(help="default: tasks/parity.py's tolerance for the precision"))),
    Command("publish", "write the next version dir into a Triton model repository (atomic)", (
        MODEL_DIR, REPO, MODEL,
        Arg("--model-file", Path, help="default: MODEL_DIR/model.onnx (MODEL_DIR/model.plan for TensorRT; without one, the ONNX "
                                       "graph on the onnxruntime backend)"),
        Arg("--backend", choices=("python", "onnxruntime", "tensorrt_plan"),
            default=env.get("SOCIAL_TONE_TRITON_BACKEND")),
        Arg("--keep", int, 3), MAX_BATCH,
        Arg("--record", Path, help="also write the result JSON here (default: the run's published.json when MODEL_DIR is "
                                   "a run's model dir)"),
        Arg("--instances", int, 2, help="model instances (2 x 1 ORT thread was fastest on 2 CPU cores)"),
        Arg("--gpu", flag, False, help="onnxruntime backend: run the instances on the GPU (KIND_GPU)"),
        Arg("--execution-env", help="python backend: env with numpy+onnxruntime (default: this interpreter's prefix)"))),
    Command("reload", "hot-reload the newest version on Triton; canary; roll back on failure", (
        MODEL_DIR.but(help="the model dir whose check rows and graph are the canary's reference"), REPO, MODEL, URL,
        Arg("--canary-rows", int, help="the first N of the run's check rows (default: all, as ONNX parity)"),
        ATOL.but(help="default: the tolerance the version was published with (per backend and precision)"),
        TIMEOUT, Arg("--retries", int, 5, help="attempts while Triton is unreachable (backoff 1,2,4.. s)"),
        Arg("--expect-version", int, help="fail unless this is the newest published version"),
        FILE.but(name="--expect-version-file"))),
    Command("rollback", "retire the serving version and serve the one before", (
        REPO, MODEL, URL, Arg("--reason", default="manual rollback"), TIMEOUT)),
    Command("triton-prepare", "before a Triton (re)start with --load-model: retire versions that never passed "
                              "a canary, restore the serving version's config", (REPO, MODEL)),
    Command("score", "score a drop through Triton (or --onnx-dir) into Parquet/CSV/JSON", (
        DROP, OUT.but(help=".parquet, .csv or .jsonl"), URL, MODEL,
        REPO.but(required=False, help="Triton's model repository (each version's thresholds)"),
        Arg("--onnx-dir", Path, help="in-process ONNX Runtime on this run/version dir"),
        Arg("--batch", int, Lazy("tasks.triton.repo:MAX_BATCH"), help="rows per request"),
        Arg("--inflight", int, 4, help="requests in flight"))),
    Command("monitor", "topic spikes and drift for one day -> ROOT/DAY/ report.json, png, html", (
        Arg("--predictions", Path, required=True, help="the day's Parquet from tasks score"),
        Arg("--day", required=True, help="YYYY-MM-DD"), ROOT, DROP.but(name="--drop", help="the day's drop, for input drift"),
        Arg("--window", int, Lazy(_DAILY + "window"), help="trailing days to compare with"),
        Z.but(default=Lazy(_DAILY + "z")),
        Arg("--min-count", int, Lazy(_DAILY + "min_count"), help="minimum expected posts for a spike"),
        Arg("--min-history", int, Lazy(_DAILY + "min_history"), help="earlier days needed before spikes are called"),
        Arg("--drift", float, 0.05, help="input mean-shift floor (in units of spread)"),
        Arg("--psi", float, 0.1, help="prediction-drift PSI threshold"),
        Arg("--dashboard", Path, help="also rebuild the trends dashboard (HTML) here"), TRACKING)),
    Command("detect", "spikes in one volume series: NAB's timestamp,value CSV -> timestamp,value,anomaly_score,"
                      "alarm,z (tasks/detect.py)", (
        Arg("--csv", Path, required=True, help="input: a header 'timestamp,value', then one row per point"),
        OUT.but(help="output CSV"), Z.but(default=Lazy("tasks.spike_params:SERIES_Z"), help="robust z-score that raises an "
                                          "alarm (docs/benchmarks.md 'Spike alerts': what each z costs)"))),
    Command("data checkout", "restore exactly the drops a model was trained on (its lineage.json)", (
        MODEL_DIR.but(help="the model's dir (MODEL_DIR/lineage.json)"), DATASET.but(help="the DVC dataset root (holds .dvc/cache)"),
        OUT.but(help="folder to restore the drops into"))),
    Command("dashboard", "the trends dashboard over every monitored day -> one HTML file", (
        ROOT, OUT.but(help="the HTML file to write"))),
    Command("serve", "run the CPU tritonserver (nvidia-pytriton) in the foreground", (
        REPO, Arg("--workdir", Path, required=True, help="backends and the server log go here"),
        Arg("--http-port", int, 8000), Arg("--grpc-port", int, 8001), Arg("--metrics-port", int, 8002),
        Arg("--load", help="load this model at start: its last version that passed a canary (newer, unverified "
                           "versions are moved aside)"),
        Arg("--bind", default="127.0.0.1", help="listen address (0.0.0.0 only inside a container network)"))),
)}


def default(command: str, dest: str) -> Any:
    """An argument's declared default (the daily DAG's form offers the monitor's and score's)."""
    value = next(a.default for a in COMMANDS[command].args if a.dest == dest)
    return value.get() if isinstance(value, Lazy) else value


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Read the Lazy defaults of what was not given (only a command that runs needs them)."""
    for k, v in vars(args).items():
        if isinstance(v, Lazy):
            setattr(args, k, v.get())
    return args


def argv(command: str, *positional, **values) -> list:
    """The command line of `command` for a DAG task: ["gate", "--metrics", m, ...]. Keys are the
    arguments' names (--max-batch: max_batch); values stay as given (XComArgs and templates are
    rendered by Airflow), lists go to nargs arguments, switches are given when true. Raises on
    an argument the command does not declare, or a required one missing."""
    cmd = COMMANDS[command]
    by_dest = {a.dest: a for a in cmd.args if not a.positional}
    unknown = set(values) - set(by_dest)
    if unknown:
        raise TypeError(f"`tasks {command}` has no argument {sorted(unknown)}; it takes {sorted(by_dest)}")
    missing = [a.name for a in cmd.args if a.required and a.dest not in values]
    if missing or len(positional) != sum(a.positional for a in cmd.args):
        raise TypeError(f"`tasks {command}`: missing {missing or 'a positional argument'}")
    out: list = [*command.split(), *(str(p) if isinstance(p, Path) else p for p in positional)]
    for dest, value in values.items():
        a = by_dest[dest]
        if a.switch:
            out += [a.name] if value else []
        elif a.nargs:
            out += [a.name, *(value if isinstance(value, (list, tuple)) else [value])]
        else:
            out += [a.name, str(value) if isinstance(value, (Path, bool, int, float)) else value]
    return out
