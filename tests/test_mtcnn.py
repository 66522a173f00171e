"""MTCNN: PNet/RNet/ONet against PyTorch definitions with facenet-pytorch's weights; the detection pipeline
against facenet-pytorch's own detect_face (run without torchvision); ``convlayers faces``."""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from convlayers.models import ONet, PNet, RNet, mtcnn_nets  # noqa: E402
from convlayers.models.mtcnn import facenet_weights_dir  # noqa: E402
from convlayers.pretrained import load_pth  # noqa: E402

WEIGHTS = facenet_weights_dir()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="facenet-pytorch not installed "
                                   "(pip install --no-deps facenet-pytorch)")
_skimage = importlib.util.find_spec("skimage")
ASTRONAUT = None if _skimage is None else os.path.join(_skimage.submodule_search_locations[0], "data",
                                                          "astronaut.png")
needs_astronaut = pytest.mark.skipif(ASTRONAUT is None or not os.path.isfile(ASTRONAUT),
                                     reason="scikit-image (skimage/data/astronaut.png) not installed")


# ---- PyTorch reference definitions (facenet-pytorch's layer names and forward passes)
class TorchPNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class TorchRNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 28, 3), nn.PReLU(28), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2, self.pool2 = nn.Conv2d(28, 48, 3), nn.PReLU(48), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class TorchONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 32, 3), nn.PReLU(32), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2, self.pool2 = nn.Conv2d(32, 64, 3), nn.PReLU(64), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3, self.pool3 = nn.Conv2d(64, 64, 3), nn.PReLU(64), nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


TWINS = {"pnet": (PNet, TorchPNet, (2, 3, 37, 53)), "rnet": (RNet, TorchRNet, (5, 3, 24, 24)),
         "onet": (ONet, TorchONet, (4, 3, 48, 48))}


def _torch_nets():
    nets = []
    for name in ("pnet", "rnet", "onet"):
        net = TWINS[name][1]()
        net.load_state_dict(torch.load(os.path.join(WEIGHTS, f"{name}.pt"), weights_only=True))
        nets.append(net.eval())
    return nets


def test_state_dict_keys_match_the_reference():
    for ours, ref, _ in TWINS.values():
        sd, rsd = ours().state_dict(), ref().state_dict()
        assert list(sd) == list(rsd)
        assert all(sd[k].shape == tuple(rsd[k].shape) for k in sd)


@needs_weights
@pytest.mark.parametrize("name", sorted(TWINS))
def test_nets_match_torch_with_facenet_weights(name):
    ours_cls, ref_cls, shape = TWINS[name]
    path = os.path.join(WEIGHTS, f"{name}.pt")
    state = load_pth(path)
    ref_state = torch.load(path, weights_only=True)
    assert list(state) == list(ref_state)
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k].numpy())
    ours = ours_cls()
    ours.load_state_dict(state)
    ref = ref_cls()
    ref.load_state_dict(ref_state)
    x = (np.random.default_rng(len(name)).standard_normal(shape)).astype(np.float32)
    got = ours.eval()(x)
    with torch.no_grad():
        want = ref.eval()(torch.from_numpy(x))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), atol=1e-5, rtol=0)


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no pnet.pt"):
        mtcnn_nets(str(tmp_path))


# ---- facenet-pytorch's own pipeline as the oracle: its detect_face.py loaded by path, torchvision's one
# dependency (batched_nms) supplied by a plain-torch NMS written here.
def _torch_batched_nms(boxes, scores, idxs, threshold):
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64)
    offs = idxs.to(boxes) * (boxes.max() + 1)
    b = boxes + offs[:, None]
    order = torch.sort(scores, descending=True, stable=True).indices
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = (torch.minimum(b[i, 2], b[rest, 2]) - torch.maximum(b[i, 0], b[rest, 0])).clamp(min=0)
        h = (torch.minimum(b[i, 3], b[rest, 3]) - torch.maximum(b[i, 1], b[rest, 1])).clamp(min=0)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
    return torch.tensor(keep, dtype=torch.int64)


def _facenet_detect_face(monkeypatch):
    tv = types.ModuleType("torchvision")
    tv_ops, tv_boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    tv_tr, tv_trf = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.transforms.functional")
    tv_boxes.batched_nms = _torch_batched_nms
    tv.ops, tv_ops.boxes, tv.transforms, tv_tr.functional = tv_ops, tv_boxes, tv_tr, tv_trf
    for name, mod in {"torchvision": tv, "torchvision.ops": tv_ops, "torchvision.ops.boxes": tv_boxes,
                      "torchvision.transforms": tv_tr, "torchvision.transforms.functional": tv_trf}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    root = importlib.util.find_spec("facenet_pytorch").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location("_facenet_detect_face",
                                                  os.path.join(root, "models", "utils", "detect_face.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.detect_face


@needs_weights
@needs_astronaut
def test_astronaut_face_matches_facenet_pipeline(monkeypatch):
    from convlayers.faces import detect_faces
    from convlayers.io import read_image

    img = read_image(ASTRONAUT, "RGB")
    boxes, points = detect_faces(img)
    assert boxes.shape == (1, 5) and points.shape == (1, 5, 2)
    x1, y1, x2, y2, p = boxes[0]
    assert p > 0.99
    # the face of the astronaut (hair to chin) is around x 180..270, y 60..175 in the 512x512 photo
    assert 160 < x1 < 200 and 250 < x2 < 290 and 40 < y1 < 85 and 150 < y2 < 195
    eyes, nose, mouth = points[0, :2], points[0, 2], points[0, 3:]
    assert (eyes[:, 1] < nose[1]).all() and (mouth[:, 1] > nose[1]).all() and eyes[0, 0] < eyes[1, 0]
    assert ((points[0, :, 0] > x1) & (points[0, :, 0] < x2) & (points[0, :, 1] > y1) & (points[0, :, 1] < y2)).all()

    detect_face = _facenet_detect_face(monkeypatch)
    with torch.no_grad():
        ref_boxes, ref_points = detect_face(img, 20, *_torch_nets(), [0.6, 0.7, 0.7], 0.709, "cpu")
    ref_boxes, ref_points = np.asarray(ref_boxes[0], np.float32), np.asarray(ref_points[0], np.float32)
    assert ref_boxes.shape == boxes.shape
    np.testing.assert_allclose(boxes[:, :4], ref_boxes[:, :4], atol=1e-2)
    np.testing.assert_allclose(boxes[:, 4], ref_boxes[:, 4], atol=1e-5)
    np.testing.assert_allclose(points, ref_points, atol=1e-2)


@needs_weights
def test_no_face_and_bad_input():
    from convlayers.faces import detect_faces
    nets = mtcnn_nets()
    flat = np.full((64, 80, 3), 128, np.uint8)
    boxes, points = detect_faces(flat, nets)
    assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detect_faces(np.zeros((10, 10)), nets)
    with pytest.raises(ValueError, match="factor"):
        detect_faces(flat, nets, factor=1.5)
    boxes, _ = detect_faces(np.zeros((8, 8, 3), np.uint8), nets)   # smaller than one PNet window
    assert boxes.shape == (0, 5)


@needs_weights
@needs_astronaut
def test_faces_cli(tmp_path, capsys):
    from PIL import Image

    from convlayers.cli import main
    out = tmp_path / "boxes.png"
    assert main(["faces", ASTRONAUT, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 face(s)" in text and text.count("face p=") == 1
    with Image.open(out) as im:
        drawn = np.asarray(im.convert("RGB"))
    original = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    changed = np.argwhere((drawn != original).any(axis=2))
    assert changed.size and 150 < changed[:, 1].min() < 200 and changed[:, 1].max() < 300   # only at the face
    for argv, code in ((["faces", ASTRONAUT, "--out", str(tmp_path / "b.jpg")], 2),
                       (["faces", ASTRONAUT, "--out", str(out), "--thresholds", "0.6,2"], 2),
                       (["faces", str(tmp_path / "none.png"), "--out", str(tmp_path / "c.png")], 1),
                       (["faces", ASTRONAUT, "--out", str(tmp_path / "d.png"), "--weights-dir", str(tmp_path)], 1)):
        try:
            got = main(argv)
        except SystemExit as exc:
            got = exc.code
        assert got == code, argv
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "d.png").exists()
