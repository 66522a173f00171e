"""``convlayers classify``: the bundled cat named offline, folders to CSV, an .onnx model, bad arguments."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from convlayers.cli import main
from convlayers.io import CHELSEA_PATH


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_names_the_cat(capsys):
    code, out, err = _run(["classify", CHELSEA_PATH], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 6
    rows = [line.split(None, 2) for line in lines[1:]]
    assert [int(r[1]) for r in rows] == [285, 282, 281, 287, 728]
    assert rows[0][2] == "Egyptian cat" and rows[1][2] == "tiger cat"
    probs = [float(r[0]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0.5 < probs[0] < 1


def test_classify_topk_and_resnet_weights_file(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from convlayers import models
    from convlayers.interop import to_torch
    torch.save(to_torch(models.resnet18(num_classes=1000)).state_dict(), tmp_path / "r.pth")
    code, out, err = _run(["classify", CHELSEA_PATH, "--model", "resnet18", "--weights",
                           str(tmp_path / "r.pth"), "--topk", "2"], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_classify_onnx_model(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 7)).eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    code, out, err = _run(["classify", CHELSEA_PATH, "--model", str(path), "--topk", "3"], capsys)
    assert code == 0, err
    from convlayers.pretrained import imagenet_preprocess
    with torch.no_grad():
        ref = net(torch.from_numpy(imagenet_preprocess(CHELSEA_PATH)[None])).numpy()[0]
    got = [int(line.split()[1]) for line in out.strip().splitlines()[1:]]
    assert got == list(np.argsort(-ref)[:3]) and "class " in out


def test_classify_folder_to_csv(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(CHELSEA_PATH, folder / "a.png")
    from PIL import Image
    Image.open(CHELSEA_PATH).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    out_csv = tmp_path / "pred.csv"
    code, out, err = _run(["classify", str(folder), "--out", str(out_csv), "--topk", "3", "--batch-size", "1"],
                          capsys)
    assert code == 0, err
    with open(out_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "index1", "label1", "prob1", "index2", "label2", "prob2", "index3", "label3", "prob3"]
    assert [os.path.basename(r[0]) for r in rows[1:]] == ["a.png", "b.jpg"]
    assert rows[1][1:3] == ["285", "Egyptian cat"]
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []
    # without --out: one line per image on stdout
    code, out, err = _run(["classify", str(folder)], capsys)
    assert code == 0 and out.count("Egyptian cat") >= 1 and len(out.strip().splitlines()) == 2


def test_classify_errors(tmp_path, capsys):
    code, _, err = _run(["classify", CHELSEA_PATH, "--model", "vgg16"], capsys)
    assert code == 2 and "--model" in err
    code, _, err = _run(["classify", str(tmp_path / "none.jpg")], capsys)
    assert code == 1 and "no such file" in err
    code, _, err = _run(["classify", CHELSEA_PATH, "--topk", "0"], capsys)
    assert code == 2 and "--topk" in err
    code, _, err = _run(["classify", CHELSEA_PATH, "--weights", str(tmp_path / "no.pth")], capsys)
    assert code == 1 and "--weights" in err
    bad = tmp_path / "evil.pth"
    import zipfile
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("a/data.pkl", b"cos\nsystem\n(S'echo hi'\ntR.")
    code, _, err = _run(["classify", CHELSEA_PATH, "--weights", str(bad)], capsys)
    assert code == 1 and "refusing to load" in err and "os.system" in err
    code, _, err = _run(["classify", CHELSEA_PATH, "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 2 and "folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["classify", str(empty), "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 1 and "no image files" in err and not (tmp_path / "p.csv").exists()
    (empty / "broken.png").write_bytes(b"\x89PNG broken")
    code, _, err = _run(["classify", str(empty), "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 1 and "broken.png" in err and not (tmp_path / "p.csv").exists()
    code, _, err = _run(["classify", str(empty), "--out", str(tmp_path / "p.txt")], capsys)
    assert code == 2 and ".csv" in err


def test_classify_subprocess():
    proc = subprocess.run([sys.executable, "-m", "convlayers", "classify", CHELSEA_PATH, "--topk", "1"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[1].endswith("285  Egyptian cat")
