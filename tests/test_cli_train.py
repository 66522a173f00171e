"""``convlayers train`` end to end, the training loop, and weight files."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from convlayers import cli, models
from convlayers.data import load_digits, train_test_split
from convlayers.nn import init
from convlayers.training import evaluate, fit, load_weights, save_weights

FINAL = re.compile(r"^test accuracy: (\d{1,3}\.\d\d)%$")


def test_training_loss_falls_and_accuracy_rises():
    init.manual_seed(0)
    x_train, y_train, x_test, y_test = train_test_split(*load_digits())
    model = models.digits_cnn("standard", width=16)
    before = evaluate(model, x_test, y_test)
    history = fit(model, x_train, y_train, x_test, y_test, epochs=4, batch_size=64, lr=5e-3, seed=0,
                  progress=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["test_accuracy"][-1] >= 0.90 > before
    assert not model.training   # fit leaves the model ready for inference


def test_fit_rejects_bad_arguments():
    model = models.digits_cnn("separable", width=4)
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, x, np.zeros(4, int), epochs=0)
    with pytest.raises(ValueError, match="x_train"):
        fit(model, x, np.zeros(3, int))
    with pytest.raises(TypeError, match="model"):
        fit(lambda v: v, x, np.zeros(4, int))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_and_load_weights_round_trip(tmp_path, suffix):
    model = models.digits_cnn("mobile", width=4)
    path = tmp_path / f"w{suffix}"
    save_weights(model, path)
    state = load_weights(path)
    assert list(state) == list(model.state_dict()) or set(state) == set(model.state_dict())
    other = models.digits_cnn("mobile", width=4)
    other.load_state_dict(state)
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(other.eval()(x), model.eval()(x))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]   # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask       # not mkstemp's private 0600
    with pytest.raises(ValueError, match=r"\.npz or \.safetensors"):
        save_weights(model, tmp_path / "w.pkl")


def run_cli(args, capsys):
    code = cli.main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_short_run_saves_loadable_weights(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    code, out, err = run_cli(["--epochs", "2", "--width", "8", "--model", "separable", "--save", str(path),
                              "--seed", "3"], capsys)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    match = FINAL.match(last)
    assert match, out
    accuracy = float(match.group(1))
    assert "loss=" in err and "acc=" in err and "epoch 2/2" in err   # the progress bar
    model = models.digits_cnn("separable", width=8)
    model.load_state_dict(load_weights(path), strict=True)
    x_train, y_train, x_test, y_test = train_test_split(*load_digits())
    assert abs(100 * evaluate(model, x_test, y_test) - accuracy) < 0.01   # the saved weights are the trained ones


def test_cli_safetensors_and_no_progress(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    code, out, err = run_cli(["--epochs", "1", "--width", "4", "--model", "mobile", "--no-progress",
                              "--save", str(path)], capsys)
    assert code == 0
    assert FINAL.match(out.strip()) and err == ""
    from safetensors.numpy import load_file
    state = load_file(str(path))
    models.digits_cnn("mobile", width=4).load_state_dict(state, strict=True)


def test_cli_trains_on_user_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.random((60, 12, 12)) * 0.1
    for i, label in enumerate(y):   # class = which third of the image is bright
        x[i, :, 4 * label:4 * label + 4] += 1
    np.savez(tmp_path / "mine.npz", x=x.astype(np.float32), y=y)
    code, out, err = run_cli(["--data", str(tmp_path / "mine.npz"), "--epochs", "3", "--width", "4",
                              "--no-progress"], capsys)
    assert code == 0, err
    assert FINAL.match(out.strip())


@pytest.mark.parametrize("content, match", [
    (b"not a zip", "not a valid .npz"),
    (None, "3 images but 2 labels"),
])
def test_cli_bad_data_exits_1_and_writes_nothing(tmp_path, capsys, content, match):
    bad = tmp_path / "bad.npz"
    if content is None:
        np.savez(bad, x=np.zeros((3, 8, 8)), y=np.zeros(2, int))
    else:
        bad.write_bytes(content)
    save = tmp_path / "out.npz"
    code, out, err = run_cli(["--data", str(bad), "--epochs", "1", "--save", str(save)], capsys)
    assert code == 1
    assert match in err and "convlayers train: error:" in err
    assert not save.exists() and "test accuracy" not in out


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    for args in (["--save", str(tmp_path / "w.pt")], ["--epochs", "0"], ["--model", "huge"],
                 ["--save", str(tmp_path / "missing" / "w.npz")], ["--lr", "-1"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["train", *args])
        assert info.value.code == 2, args
    assert not list(tmp_path.iterdir())


def test_cli_entry_point_lists_train():
    result = subprocess.run([sys.executable, "-m", "convlayers", "train", "--help"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0
    for option in ("--model", "--epochs", "--batch-size", "--lr", "--seed", "--data", "--save", "--no-progress"):
        assert option in result.stdout
