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
    assert 600 <= w <= 4000 and 300 <= h <= 4000  # 4 + 3 cells of 300 x 451 (height x width) photos
    assert 50_000 < out.stat().st_size < 10_000_000
    text = capsys.readouterr().out
    assert "bundled cat" in text and "300 x 451 pixels (height x width)" in text
    assert "converted to grey" in text            # the bundled photo is colour: said, not silent
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
    (["filters", "--filters", "sobel_x,sobel_x"], "'sobel_x' named more than once"),
    (["filters", "--max-pixels", "0"], "--max-pixels"),
    (["filters", "--channel", "alpha"], "invalid choice"),
    (["filters", "--save-dir", "no/such/parent/dir"], "parent directory"),
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


def _photo(path, size, colour=True):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], 3) if colour else (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def test_channel_and_colour_note(tmp_path, capsys):
    img = tmp_path / "c.png"
    arr = _photo(img, (30, 20))
    save = tmp_path / "r"
    assert main(["filters", str(img), "--filters", "identity", "--channel", "g", "--out",
                 str(tmp_path / "g.png"), "--save-dir", str(save)]) == 0
    out = capsys.readouterr().out
    assert "G channel" in out and "converted" not in out
    got = read_image(save / "identity.png")
    g = arr[:, :, 1].astype(float)
    np.testing.assert_array_equal(got, np.rint((g - g.min()) * 255 / (g.max() - g.min())))
    gray = tmp_path / "gray.png"
    _photo(gray, (30, 20), colour=False)
    assert main(["filters", str(gray), "--filters", "blur", "--out", str(tmp_path / "h.png")]) == 0
    assert "note:" not in capsys.readouterr().out    # a grey file needs no note


def test_max_pixels_guard(tmp_path, capsys):
    img = tmp_path / "big.png"
    _photo(img, (50, 40))
    out = tmp_path / "g.png"
    assert main(["filters", str(img), "--max-pixels", "1999", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "40 x 50 (height x width) = 2,000 pixels" in err and "--max-pixels 2000" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["filters", str(img), "--max-pixels", "2000", "--out", str(out)]) == 0
    from PIL import Image as PILImage
    assert PILImage.MAX_IMAGE_PIXELS == 89_478_485   # restored: the guard stays on for everyone else


def test_failing_save_dir_leaves_no_gallery(tmp_path, monkeypatch, capsys):
    from convlayers.commands import filters as cmd

    img = tmp_path / "in.png"
    _photo(img, (40, 30))
    calls = []

    def broken(tmp, array):
        calls.append(tmp)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(tmp, array)

    real = cmd._write_png_to
    monkeypatch.setattr(cmd, "_write_png_to", broken)
    save = tmp_path / "resp"
    assert main(["filters", str(img), "--out", str(tmp_path / "g.png"), "--save-dir", str(save)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == ["convlayers filters: error: No space left on device"]
    assert sorted(os.listdir(tmp_path)) == ["in.png"]      # no gallery, no directory, no temp files


def test_existing_outputs_untouched_on_failure(tmp_path, monkeypatch, capsys):
    img = tmp_path / "in.png"
    _photo(img, (40, 30))
    save = tmp_path / "resp"
    save.mkdir()
    (save / "blur.png").write_bytes(b"old")
    (tmp_path / "g.png").write_bytes(b"old gallery")
    import convlayers.viz._common as common
    monkeypatch.setattr(common, "png_bytes", lambda fig: (_ for _ in ()).throw(RuntimeError("draw failed")))
    assert main(["filters", str(img), "--filters", "blur", "--out", str(tmp_path / "g.png"),
                 "--save-dir", str(save)]) == 1
    assert "draw failed" in capsys.readouterr().err
    assert (tmp_path / "g.png").read_bytes() == b"old gallery"
    assert sorted(os.listdir(save)) == ["blur.png"] and (save / "blur.png").read_bytes() == b"old"


def test_unwritable_output_checked_before_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root writes anywhere a mode allows; /proc refuses new files even to root
    target = "/proc/convlayers-gallery.png" if os.geteuid() == 0 else str(ro / "g.png")
    try:
        for argv in (["filters", "--out", target], ["filters", "--out", str(tmp_path / "g.png"), "--save-dir",
                                                     os.path.join(os.path.dirname(target), "resp")]):
            with pytest.raises(SystemExit) as exc:
                main(argv)
            assert exc.value.code == 2 and "cannot write" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)
    assert sorted(os.listdir(tmp_path)) == ["ro"]


def test_missing_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    import convlayers.viz._common as common

    def missing():
        raise common.MissingExtraError("drawing pictures needs matplotlib: pip install 'convlayers[plot]'")

    monkeypatch.setattr(common, "matplotlib_parts", missing)
    monkeypatch.chdir(tmp_path)
    assert main(["filters"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["convlayers filters: error: drawing pictures needs matplotlib: "
                                        "pip install 'convlayers[plot]'"]
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_9000_square_photo_in_bounded_memory(tmp_path):
    """Issue #10 item 7: a 9000x9000 photo with --save-dir in < 3 GiB peak RSS and < 60 s of CPU time.

    CPU time (user + system of the child), not wall time: on the shared 2-core machine wall time
    measures the neighbours (measured: 1.83 GB, 25.8 CPU-s, 99-116 s wall at load average 13-15).
    """
    from convlayers.io import CHELSEA_PATH

    img = tmp_path / "big.jpg"
    Image.fromarray(read_image(CHELSEA_PATH, "RGB")).resize((9000, 9000), Image.BILINEAR).save(img, quality=85)
    code = ("import resource, sys; from convlayers.cli import main; rc = main(sys.argv[1:]); "
            "u = resource.getrusage(resource.RUSAGE_SELF); "
            "print('RUSAGE', u.ru_maxrss, u.ru_utime + u.ru_stime); sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code, "filters", str(img), "--out", str(tmp_path / "g.png"),
                           "--save-dir", str(tmp_path / "resp")], capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RUSAGE")][0]
    maxrss_kib, cpu = int(line.split()[1]), float(line.split()[2])
    assert maxrss_kib * 1024 < 3 * 2**30, f"peak RSS {maxrss_kib / 2**20:.2f} GiB"
    assert cpu < 60, f"{cpu:.1f} CPU seconds"
    assert len(os.listdir(tmp_path / "resp")) == 6
