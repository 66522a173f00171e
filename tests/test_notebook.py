"""examples/tour.ipynb: stored without outputs, and it runs top to bottom with this interpreter's kernel."""

import json
import os
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def test_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 8
    for c in code:
        assert c["outputs"] == [] and c["execution_count"] is None


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # A kernelspec for *this* interpreter (CI's .venv, or the dev venv), so the notebook sees the same
    # convlayers and packages as the tests; found through JUPYTER_PATH, nothing installed for the user.
    spec = tmp_path / "kernels" / "convlayers-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "convlayers tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    src = str(Path(__file__).resolve().parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="convlayers-test", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    gifs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "display_data" and "image/gif" in o.get("data", {})]
    assert len(images) == 8 and len(gifs) == 2
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "= -6 -> out[0, 0]" in text
    import re
    acc = float(re.search(r"test accuracy (\d+\.\d)%", text).group(1))
    assert acc > 90  # 96.1 % here; seeded, so the same on every run of one machine
