"""``convlayers explain TOPIC``: each topic writes its pictures and prints the same idea as text."""

import os

import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from convlayers.cli import main  # noqa: E402


@pytest.mark.parametrize("argv,files,needle", [
    (["explain", "shapes"], ["shapes.png"], "floor((8 + 0 - 3) / 2) + 1 = 3"),
    (["explain", "pool"], ["pool.png"], "window (0, 0): [1 2; 3 4] -> max 4"),
    (["explain", "conv", "--padding", "1"], ["conv_p1_s1.gif", "conv_p1_s1.png"], "16 window positions"),
])
def test_topic_writes_and_explains(tmp_path, capsys, argv, files, needle):
    assert main(argv + ["--out", str(tmp_path / "pics")]) == 0
    assert sorted(os.listdir(tmp_path / "pics")) == files
    text = capsys.readouterr().out
    assert needle in text
    for f in files:
        assert f"wrote {tmp_path / 'pics' / f}" in text
        with Image.open(tmp_path / "pics" / f) as im:
            assert im.size[0] > 500


@pytest.mark.parametrize("argv,needle", [
    (["explain", "nope"], "invalid choice"),
    (["explain", "pool", "--stride", "2"], "'conv' topic only"),
    (["explain", "conv", "--stride", "0"], "--stride"),
    (["explain", "conv", "--padding", "-1"], "--padding"),
    (["explain", "conv", "--out", "no/such/dir/x"], "parent directory"),
])
def test_usage_errors(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    import convlayers.viz._common as common

    def missing():
        raise common.MissingExtraError("drawing pictures needs matplotlib: pip install 'convlayers[plot]'")

    monkeypatch.setattr(common, "matplotlib_parts", missing)
    assert main(["explain", "conv", "--out", str(tmp_path / "p")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert os.listdir(tmp_path) == []
