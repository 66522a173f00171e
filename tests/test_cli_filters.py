"""The ``convlayers filters`` command, end to end on the bundled cat."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from convlayers.cli import main  # noqa: E402
from convlayers.filters import FILTERS, SEED_FILTERS  # noqa: E402
from convlayers.io import read_image  # noqa: E402


def test_default_gallery_on_bundled_cat(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["filters"]) == 0
    out = tmp_path / "gallery.png"
    assert out.is_file()
    with Image.open(out) as im:
        w, h = im.size
        assert im.format == "PNG"
    assert 600 <= w <= 4000 and 300 <= h <= 4000  # 4 x 2 grid of 451 x 300 photos
    assert 50_000 < out.stat().st_size < 10_000_000
    assert "bundled cat" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["gallery.png"]  # no temp files left


def test_save_dir_writes_each_response(tmp_path):
    img = tmp_path / "in.png"
    arr = np.zeros((40, 60), np.uint8); arr[:, 30:] = 255
    Image.fromarray(arr).save(img)
    save = tmp_path / "resp"
    rc = main(["filters", str(img), "--filters", "sobel_x,blur", "--boundary", "wrap",
               "--out", str(tmp_path / "g.png"), "--save-dir", str(save)])
    assert rc == 0
    assert sorted(os.listdir(save)) == ["blur.png", "sobel_x.png"]
    sob = read_image(save / "sobel_x.png")
    assert sob.shape == (40, 60)
    assert sob.min() == 0 and sob.max() == 255  # min-max normalised


def test_list_prints_bank(capsys):
    assert main(["filters", "--list"]) == 0
    text = capsys.readouterr().out
    for name in FILTERS:
        assert name in text
    assert "(seed)" in text and "-1." in text


def test_corrupt_file_exit_1_and_nothing_written(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    save = tmp_path / "resp"
    rc = main(["filters", str(bad), "--out", str(tmp_path / "g.png"), "--save-dir", str(save)])
    assert rc == 1
    assert "broken.png" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["broken.png"]


def test_missing_file_exit_1(tmp_path):
    assert main(["filters", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "g.png")]) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv,needle", [
    (["filters", "--filters", "vertical,nope"], "unknown filter"),
    (["filters", "--filters", ","], "at least one"),
    (["filters", "--out", "gallery.jpg"], ".png"),
    (["filters", "--boundary", "reflect"], "invalid choice"),
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_subprocess_module_entry(tmp_path):
    out = tmp_path / "cat.png"
    proc = subprocess.run([sys.executable, "-m", "convlayers", "filters", "--out", str(out),
                           "--filters", ",".join(SEED_FILTERS)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 50_000
