"""``convlayers classify folder/ --dask``: the same CSV as in-process, on a LocalCluster and at --scheduler."""

from __future__ import annotations

import csv
import shutil

import pytest

pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")

from convlayers.cli import main  # noqa: E402
from convlayers.io import CHELSEA_PATH  # noqa: E402


@pytest.fixture(scope="module")
def client():
    import convlayers.dask as cd
    c = cd.cluster(n_workers=1, memory_limit="2GiB")
    yield c
    c.close()


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_classify_folder_dask_matches_in_process(client, tmp_path, capsys):
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(CHELSEA_PATH, folder / "cat.png")
    Image.open(CHELSEA_PATH).rotate(180).save(folder / "upside_down.png")
    Image.open(CHELSEA_PATH).crop((100, 50, 400, 280)).save(folder / "crop.jpg")
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert main(["classify", str(folder), "--out", str(local), "--batch-size", "2"]) == 0
    code = main(["classify", str(folder), "--dask", "--scheduler", client.scheduler.address, "--batch-size", "2",
                 "--out", str(remote)])
    assert code == 0, capsys.readouterr().err
    a, b = _rows(local), _rows(remote)
    assert len(a) == 4 and [r[0] for r in a] == [r[0] for r in b]
    for ra, rb in zip(a[1:], b[1:]):
        assert ra[1::3] == rb[1::3] and ra[2::3] == rb[2::3]          # same classes and labels per rank
        assert all(abs(float(x) - float(y)) < 1e-5 for x, y in zip(ra[3::3], rb[3::3]))
    assert a[1][2] == "Egyptian cat"
    assert "wrote" in capsys.readouterr().out


def test_classify_dask_usage_errors(tmp_path, capsys):
    for argv, code in ((["classify", CHELSEA_PATH, "--dask"], 2),
                       (["classify", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"], 2)):
        try:
            got = main(argv)
        except SystemExit as exc:
            got = exc.code
        assert got == code
