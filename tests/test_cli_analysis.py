"""``convlayers summary``, ``compare`` and ``demo`` end to end."""

import json
import os
import subprocess
import sys

import pytest

from convlayers.cli import main


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) whether the command returns or exits."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_mobilenet_v2(capsys):
    code, out, _ = run_cli(["summary", "mobilenet_v2", "--input", "1,3,224,224"], capsys)
    assert code == 0
    assert "Total params: 3,504,872" in out and "Total MACs: 300,774,272" in out
    assert "features.18.0" in out and "FLOPs = 2 x MACs" in out


def test_summary_json_and_module_spec(capsys):
    code, out, _ = run_cli(["summary", "convlayers.models:resnet18", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert (d["total_params"], d["total_macs"], d["input_shape"]) == (11_689_512, 1_814_073_344, [1, 3, 224, 224])


def test_summary_digits_default_input(capsys):
    code, out, _ = run_cli(["summary", "digits_cnn"], capsys)
    assert code == 0 and "[1, 1, 8, 8]" in out and "210,394" in out   # digits_cnn() at its default width 48


@pytest.mark.parametrize("argv, words", [
    (["summary", "mobilenet_v3"], "unknown model 'mobilenet_v3'"),
    (["summary", "resnet18", "--input", "1,3,abc"], "--input"),
    (["summary", "resnet18", "--input", "1,3,0,224"], "positive"),
    (["summary", "resnet18", "--input", ""], "--input"),
    (["summary", "resnet18", "--input", "1,1,224,224"], "channels"),
    (["summary", "no_such_package.mod:net"], "cannot load"),
    (["summary", "convlayers.models:nothing"], "cannot load"),
    (["summary", "convlayers.models:ResNet"], "no arguments"),
    (["summary", "convlayers.models:DIGIT_MODELS"], "neither a Module nor callable"),
    (["compare", "64"], "two channel counts"),
    (["compare", "64", "128", "--groups", "3"], "groups"),
    (["compare", "--size", "a"], "--size"),
    (["compare", "64", "x"], "invalid int"),
    (["demo", "--epochs", "0"], "--epochs"),
])
def test_bad_arguments_exit_2(argv, words, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert words in err and out == ""


def test_compare_seed_and_custom(capsys):
    code, out, _ = run_cli(["compare"], capsys)
    assert code == 0 and "64->32" in out and "8,768" in out and "8.4x" in out
    code, out, _ = run_cli(["compare", "64", "128", "--kernel", "3"], capsys)
    assert code == 0 and "64->128   1x1" in out and "8,192" in out
    code, out, _ = run_cli(["compare", "16", "32", "--kernel", "5", "--size", "7,9", "--json"], capsys)
    assert code == 0 and json.loads(out)["width"] == 9


# The tour's end-to-end run (stops, pictures, index.html, Chromium) is tests/test_demo.py.


def test_demo_refuses_a_file_as_out(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_cli(["demo", "--out", str(f)], capsys)
    assert code == 2 and "not a directory" in err


def test_entry_point_subprocess():
    proc = subprocess.run([sys.executable, "-m", "convlayers", "summary", "resnet18", "--input", "1,3,64,64"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 11,689,512" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "convlayers", "summary", "vgg16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown model" in proc.stderr
