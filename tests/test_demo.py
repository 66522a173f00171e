"""``convlayers demo``: every picture written and listed, index.html in order, rendered by headless Chromium."""

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from convlayers.cli import main  # noqa: E402
from convlayers.commands.demo import PICTURES  # noqa: E402

EXPECTED = ["gallery.png", "conv.png", "conv.gif", "conv_p1_s2.png", "conv_p1_s2.gif", "shapes.png", "pool.png",
            "efficient.png", "receptive_field.png", "features.png", "index.html"]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour") / "demo"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--out", str(out), "--quick"]) == 0
    return out, buf.getvalue()


def test_demo_writes_and_lists_every_picture(tour):
    out, text = tour
    assert sorted(os.listdir(out)) == sorted(EXPECTED)          # nothing else, no temp files
    listed = text.split("Wrote ", 1)[1].splitlines()[1:1 + len(EXPECTED)]
    assert [ln.strip() for ln in listed] == EXPECTED
    assert f"Wrote {len(EXPECTED)} files" in text
    for name in EXPECTED:
        if name.endswith((".png", ".gif")):
            with Image.open(out / name) as im:
                assert im.size[0] >= 600 and im.size[1] >= 300, name
                arr = np.asarray(im.convert("RGB"))
            assert arr.std() > 10, f"{name} looks blank"
    assert re.search(r"Test accuracy: \d+\.\d% after 1 epoch\(s\) on a 256-image subset, seeds fixed", text)
    for words in ("[1/9]", "[9/9]", "1/N + 1/k^2", "Total params: 8,832", f"files to {out}"):
        assert words in text


def test_index_shows_the_pictures_in_tour_order(tour):
    out, _ = tour
    page = (out / "index.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == [n for n in EXPECTED if n != "index.html"]
    assert [p[0] for p in PICTURES] == [n for n in EXPECTED if n.endswith(".png")]
    for _, heading, _ in PICTURES:
        assert heading in page
    assert "http" not in page and "<script" not in page                 # static: no server, no network


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHECK = """<pre id="imgcheck">pending</pre><script>
window.addEventListener("load", function () {
  var rows = Array.prototype.map.call(document.images, function (im) {
    return im.getAttribute("src") + " " + (im.complete ? 1 : 0) + " " + im.naturalWidth + " " + im.naturalHeight;
  });
  document.getElementById("imgcheck").textContent = "IMAGES " + rows.length + "\\n" + rows.join("\\n");
});
</script></body>"""


def _run_chromium(binary, *args):
    profile = tempfile.mkdtemp(prefix="convlayers-chromium-")
    try:
        return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (CI installs Debian's 'chromium')")
def test_index_renders_in_headless_chromium(tour, tmp_path):
    out, _ = tour
    copy = tmp_path / "site"
    shutil.copytree(out, copy)
    page = copy / "index.html"
    page.write_text(page.read_text().replace("</body>", CHECK))       # a test copy with a checking script
    proc = _run_chromium(_chromium(), "--virtual-time-budget=15000", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="imgcheck">IMAGES (\d+)\n(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stdout[-2000:]
    rows = [r.split() for r in m.group(2).strip().splitlines()]
    assert int(m.group(1)) == len(rows) == len(EXPECTED) - 1
    for src, complete, w, h in rows:
        with Image.open(copy / src) as im:
            assert complete == "1" and (int(w), int(h)) == im.size, src     # loaded, decoded, right size
    shot = tmp_path / "shot.png"
    proc = _run_chromium(_chromium(), "--window-size=1200,2400", "--hide-scrollbars", f"--screenshot={shot}",
                         (out / "index.html").as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        arr = np.asarray(im.convert("L"), dtype=float)
    assert arr.shape == (2400, 1200) and arr.std() > 20                    # pictures on the page, not blank


def test_demo_bad_out(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(f)])
    assert exc.value.code == 2 and "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--epochs", "0", "--out", str(tmp_path / "d")])
    assert exc.value.code == 2
    assert sorted(os.listdir(tmp_path)) == ["file"]
