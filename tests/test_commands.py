"""The CLI is derived from one declaration per command (tasks/commands.py)."""
import inspect
import re
import subprocess
import sys

import pytest

from tasks import cli, commands


def test_build_parser_is_short_and_every_command_has_its_handler():
    assert len(inspect.getsource(cli.build_parser).splitlines()) <= 60
    parser = cli.build_parser()
    for c in commands.COMMANDS.values():
        assert callable(getattr(cli, c.handler)), c.handler
        args = parser.parse_args([*c.name.split(), *["x" for a in c.args if a.positional],
                                  *[v for a in c.args if a.required and not a.positional
                                    for v in (a.name, *(["x"] * (1 if a.nargs is None else 2)))]])
        assert args.func is getattr(cli, c.handler)


def test_no_flag_is_declared_twice():
    """A flag several commands take is one shared Arg (`Arg.but` changes its help or default)."""
    src = inspect.getsource(commands)
    declared = re.findall(r'Arg\(\s*"(--[\w-]+)"', src) + re.findall(r'name="(--[\w-]+)"', src)
    assert len(declared) == len(set(declared)), sorted(f for f in declared if declared.count(f) > 1)


def test_argv_builds_what_the_parser_reads_and_refuses_what_it_does_not_declare():
    line = commands.argv("publish", model_dir="/r/model", repo="/t", gpu=True, max_batch=64)
    assert line == ["publish", "--model-dir", "/r/model", "--repo", "/t", "--gpu", "True", "--max-batch", "64"]
    args = commands.resolve(cli.build_parser().parse_args(line))
    assert args.gpu is True and args.max_batch == 64 and args.keep == 3 and args.model == commands.MODEL_NAME
    assert commands.argv("validate", "/d", kind="labeled", no_fail=True) == ["validate", "/d", "--kind", "labeled",
                                                                             "--no-fail"]
    assert commands.argv("train", data=["/a", "/b"], out="/o")[:4] == ["train", "--data", "/a", "/b"]
    with pytest.raises(TypeError, match="no argument .'max_batches'"):
        commands.argv("publish", model_dir="/r", repo="/t", max_batches=1)
    with pytest.raises(TypeError, match="missing .'--repo'"):
        commands.argv("publish", model_dir="/r")


def test_lazy_defaults_are_read_only_when_a_command_runs():
    """Parsing imports nothing heavy (the DAG side parses); running resolves the defaults."""
    code = ("import sys; from tasks.cli import build_parser\n"
            "a = build_parser().parse_args(['monitor', '--predictions', 'p', '--day', 'd', '--root', 'r'])\n"
            "assert 'numpy' not in sys.modules, 'parsing imported numpy'\n"
            "from tasks.commands import resolve; from tasks.detect import DAILY\n"
            "a = resolve(a); assert (a.window, a.z, a.min_count) == (DAILY.window, DAILY.z, DAILY.min_count)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_renamed_flag_is_refused_with_the_new_name():
    p = subprocess.run([sys.executable, "-m", "tasks", "export-onnx", "--run", "/r/model"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "--run was renamed: use --model-dir" in p.stderr
