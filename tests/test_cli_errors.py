"""Every bad input to the CLI is one line on stderr and exit 2 (arguments) or 1 (data), never a traceback;
outputs are checked before long work and nothing partial is left (issue #10 item 6, issue #13 item 6)."""

import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from convlayers import cli

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def run(argv, capsys):
    """(exit code, stdout, stderr) whether the command returns or exits."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"convlayers {command}: error: "), err
    assert "Traceback" not in err


def huge_npz(path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += " " * (117 - len(header)) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", member)
        z.writestr("y.npy", member)


def bad_data(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    rng = np.random.default_rng(0)
    if kind == "truncated":
        np.savez(path, x=rng.random((30, 8, 8)), y=np.arange(30) % 3)
        path.write_bytes(path.read_bytes()[:1500])
    elif kind == "huge_header":
        huge_npz(path)
    elif kind == "four_examples":
        np.savez(path, x=rng.random((4, 8, 8)), y=np.array([0, 0, 1, 1]))
    elif kind == "label_2_31":
        np.savez(path, x=rng.random((6, 8, 8)), y=np.array([0, 1, 2**31 - 1] * 2))
    elif kind == "object":
        with zipfile.ZipFile(path, "w") as z:
            import io
            buf = io.BytesIO()
            np.save(buf, np.array([None] * 4, dtype=object), allow_pickle=True)
            z.writestr("x.npy", buf.getvalue())
            z.writestr("y.npy", buf.getvalue())
    elif kind == "nan_images":
        np.savez(path, x=np.full((30, 8, 8), np.nan), y=np.arange(30) % 3)
    elif kind == "tiny_images":
        np.savez(path, x=rng.random((30, 2, 2)), y=np.arange(30) % 3)
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize("kind, needle", [
    ("truncated", "truncated or corrupt"),
    ("huge_header", "claims shape (1000000000000,)"),
    ("four_examples", "empty test split"),
    ("label_2_31", "2147483647"),
    ("object", "object"),
    ("nan_images", "NaN"),
    ("tiny_images", "at least 4x4"),
    ("missing", "does not exist"),
])
def test_train_bad_data_is_one_line_exit_1_and_writes_nothing(tmp_path, capsys, kind, needle):
    data = bad_data(tmp_path, kind)
    save = tmp_path / "out" / "w.npz"
    save.parent.mkdir()
    code, out, err = run(["train", "--data", str(data), "--epochs", "1", "--save", str(save)], capsys)
    assert code == 1, err
    assert_one_line(err, "train")
    assert needle in err
    assert list(save.parent.iterdir()) == [] and "test accuracy" not in out


def test_train_refuses_unwritable_save_before_training(tmp_path, capsys, monkeypatch):
    import convlayers.training

    def no_training(*args, **kwargs):
        raise AssertionError("training started before --save was checked")

    monkeypatch.setattr(convlayers.training, "fit", no_training)
    (tmp_path / "file").write_text("x")
    (tmp_path / "w.npz").mkdir()
    for path, needle in ((tmp_path / "file" / "w.npz", "does not exist"), (tmp_path / "w.npz", "is a directory"),
                         ("/proc/convlayers-test.npz", "cannot write in"), (tmp_path / "w.pt", ".npz or .safetensors")):
        code, _, err = run(["train", "--save", str(path)], capsys)
        assert code == 2, (path, err)
        assert_one_line(err, "train")
        assert needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "w.npz"]   # no probe file left behind


def test_train_save_failing_at_the_end_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import convlayers.training

    def full_disk(model, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(convlayers.training, "save_weights", full_disk)
    code, out, err = run(["train", "--epochs", "1", "--width", "4", "--no-progress", "--save",
                          str(tmp_path / "w.npz")], capsys)
    assert code == 1
    assert_one_line(err, "train")
    assert "No space left on device" in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "x"], ["train", "--seed", "-1"], ["train", "--lr", "nan"], ["train", "--nope"],
    ["train", "--labels", "l.idx"], ["train", "--label-smoothing", "1"], ["train", "--width", "100000"],
    ["summary"], ["summary", "nope"], ["summary", "digits_cnn", "--input", "1,a"],
    ["summary", "digits_cnn", "--input", "1,3,8,8"],
    ["compare", "1"], ["compare", "64", "64", "--kernel", "99999999999999999999"], ["compare", "--size", "0"],
    ["compare", "--kernel", "x"],
    ["bench", "--threads", "0"], ["bench", "--json", "/proc/x.json"],
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert_one_line(err, argv[0])
    assert list(tmp_path.iterdir()) == []


def test_bench_json_is_checked_before_timing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("threadpoolctl")
    import convlayers.benchmark

    monkeypatch.setattr(convlayers.benchmark, "run", lambda **kw: pytest.fail("benchmark ran"))
    (tmp_path / "d.json").mkdir()
    code, _, err = run(["bench", "--json", str(tmp_path / "d.json")], capsys)
    assert code == 2 and "is a directory" in err


# ---- the shared handler ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, code, needle", [
    (MemoryError(), 1, "out of memory"),
    (OSError(13, "Permission denied", "/x/y.png"), 1, "/x/y.png: Permission denied"),
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), 1,
     "pip install 'convlayers[plot]'"),
    (ModuleNotFoundError("No module named 'tqdm.auto'", name="tqdm.auto"), 1, "pip install 'convlayers[train]'"),
    (ImportError("drawing figures needs matplotlib: pip install convlayers[plot]"), 1, "needs matplotlib"),
    (ValueError("line one\nline two"), 1, "line one line two"),
    (FloatingPointError("diverged"), 1, "diverged"),
    (RuntimeError("surprise"), 1, "internal error: RuntimeError: surprise"),
    (cli.UsageError("bad\nvalue"), 2, "bad value"),
    (cli.InputError("bad file"), 1, "bad file"),
])
def test_handler_maps_every_exception_to_one_line(monkeypatch, capsys, exc, code, needle):
    from convlayers.commands import compare

    def boom(args):
        raise exc

    monkeypatch.setattr(compare, "run", boom)
    got, out, err = run(["compare"], capsys)
    assert got == code
    assert_one_line(err, "compare")
    assert needle in err and out == ""


def test_traceback_on_request(monkeypatch):
    from convlayers.commands import compare

    monkeypatch.setattr(compare, "run", lambda args: 1 / 0)
    monkeypatch.setenv("CONVLAYERS_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["compare"])


def test_missing_matplotlib_is_one_line(monkeypatch, capsys, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib -> ModuleNotFoundError
    code, _, err = run(["filters", "--out", str(tmp_path / "g.png"), "--filters", "blur"], capsys)
    assert code == 1
    assert_one_line(err, "filters")
    assert "matplotlib" in err and "pip install" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_safetensors_for_save_is_refused_before_training(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    code, _, err = run(["train", "--save", str(tmp_path / "w.safetensors")], capsys)
    assert code == 2 and "safetensors" in err
    assert_one_line(err, "train")


def test_fit_without_tqdm_falls_back_to_lines(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    code, out, err = run(["train", "--epochs", "1", "--width", "4"], capsys)
    assert code == 0 and "epoch 1/1:" in err and out.startswith("test accuracy")


# ---- real processes: no traceback reaches the terminal, and module:callable imports from the cwd ---------------

def script_run(args, cwd):
    """Run the CLI the way the console script does: sys.path[0] is the script's directory, not the cwd."""
    script = os.path.join(str(cwd), "..", "entry", "convlayers_entry.py")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as fh:
        fh.write("import sys\nfrom convlayers.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, script, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_summary_imports_module_callable_from_the_current_directory(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mynet.py").write_text(textwrap.dedent("""
        from convlayers import nn
        def build():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        def broken():
            raise RuntimeError("builder failed")
    """))
    (work / "crashes.py").write_text("raise KeyError('at import')\n")
    proc = script_run(["summary", "mynet:build", "--input", "1,3,8,8"], work)
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 112" in proc.stdout
    for spec, code, needle in (("mynet:broken", 1, "builder failed"), ("crashes:x", 1, "KeyError"),
                               ("nosuch:x", 2, "no module named 'nosuch'"), ("mynet:nope", 2, "no attribute")):
        proc = script_run(["summary", spec], work)
        assert proc.returncode == code, proc.stderr
        assert_one_line(proc.stderr, "summary")
        assert needle in proc.stderr


def test_real_process_bad_data_has_no_traceback(tmp_path):
    huge_npz(tmp_path / "huge.npz")
    proc = script_run(["train", "--data", "huge.npz", "--save", "w.npz"], tmp_path)
    assert proc.returncode == 1
    assert_one_line(proc.stderr, "train")
    assert sorted(os.listdir(tmp_path)) == ["huge.npz"]


# ---- a small fuzz: random argument lists never escape as an exception or a multi-line error -------------------

_VOCAB = {
    "summary": [["mobilenet_v2"], ["digits_cnn"], ["x:y"], ["os:getcwd"], ["math:pi"], ["convlayers.nn:ReLU"],
                ["--input", "1,3,32,32"], ["--input", "0"], ["--input", "1,1,1,1,1,1,1"], ["--input", "-1,3,4,4"],
                ["--input", "1,3,99999999999999999999,4"], ["--input", ""], ["--input", "1x3x8x8"], ["--json"],
                ["--input", "1,3,1,1"], ["--bogus"]],
    "compare": [["1", "2"], ["0", "0"], ["64", "64"], ["--kernel", "1"], ["--kernel", "-1"], ["--groups", "64"],
                ["--groups", "-2"], ["--size", "1"], ["--size", "a,b"], ["--size", "3,-3"], ["--json"],
                ["--kernel", "2147483647"], ["7", "2147483647"], ["--size", "1,1"]],
}


def test_fuzzed_arguments_end_in_one_line_or_success(capsys):
    import random

    rng = random.Random(0)
    outcomes = {0: 0, 1: 0, 2: 0}
    for _ in range(150):
        command = rng.choice(sorted(_VOCAB))
        argv = [command] + sum(rng.sample(_VOCAB[command], rng.randint(0, 3)), [])
        code, _, err = run(argv, capsys)
        assert code in outcomes, (argv, code, err)
        outcomes[code] += 1
        if code:
            assert_one_line(err, command)
            assert "internal error" not in err, argv
    assert outcomes[0] and outcomes[2], outcomes   # the vocabulary reaches both success and refusal
