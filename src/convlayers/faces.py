"""Face detection with MTCNN (Zhang et al., 2016): boxes and five landmarks per face.

The three cascaded nets of :mod:`convlayers.models.mtcnn` with
facenet-pytorch's trained weights and its settings (thresholds 0.6, 0.7, 0.7;
pyramid factor 0.709; smallest face 20 px):

1. an image pyramid (area resampling), scales ``12/min_face · factor^k``
   while the short side stays ≥ 12 px; PNet on each level gives a face
   probability and box offsets per 12×12 window at stride 2; windows over
   threshold become boxes, thinned by NMS (IoU 0.5) per level, then across
   levels (0.7), regressed and squared;
2. RNet rescores 24×24 crops of those boxes, NMS (0.7), regression, squaring;
3. ONet on 48×48 crops gives the final score, box regression and the
   landmarks (eyes, nose, mouth corners); a last NMS uses overlap over the
   smaller box (0.7).

Coordinates are pixels of the input image (x right, y down), boxes
``(x1, y1, x2, y2)``.
"""

from __future__ import annotations

import numpy as np

from . import functional as F

__all__ = ["detect_faces", "draw_faces", "MTCNN_THRESHOLDS", "MTCNN_FACTOR", "MTCNN_MIN_FACE"]

MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
MTCNN_FACTOR = 0.709
MTCNN_MIN_FACE = 20


def _nms(boxes, scores, threshold, mode="iou"):
    """Greedy NMS, highest score first; indices kept.

    ``'iou'``: intersection over union on continuous boxes (torchvision's
    ``nms``); ``'min'``: intersection over the smaller box, pixel-inclusive
    areas (``+ 1``), as MTCNN's last stage.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    plus = 1.0 if mode == "min" else 0.0
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if mode == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes):
    """Grow each box to a square about its centre (side = the longer side)."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes, reg):
    """Apply RNet/ONet box offsets (relative to pixel-inclusive width and height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _normalise(x):
    return (x - np.float32(127.5)) * np.float32(0.0078125)


def _crops(image, boxes, size):
    """Area-resampled ``size``×``size`` crops of the boxes (truncated to ints, clipped to the image)."""
    h, w = image.shape[1:]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    valid = (ey > y - 1) & (ex > x - 1)
    crops = [F.interpolate(image[None, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], size=(size, size), mode="area")
             for k in np.flatnonzero(valid)]
    if not crops:
        return valid, np.zeros((0, 3, size, size), np.float32)
    return valid, _normalise(np.concatenate(crops))


def detect_faces(image, nets=None, thresholds=MTCNN_THRESHOLDS, factor=MTCNN_FACTOR, min_face=MTCNN_MIN_FACE):
    """Find faces in an RGB image with MTCNN.

    Parameters
    ----------
    image : ndarray (H, W, 3), uint8 or float in 0..255
    nets : (PNet, RNet, ONet), optional
        Default: :func:`convlayers.models.mtcnn_nets` (facenet-pytorch's weights).
    thresholds : 3 floats, default (0.6, 0.7, 0.7)
    factor : float, default 0.709
        Scale step of the image pyramid.
    min_face : float, default 20
        Smallest face side looked for, in pixels.

    Returns
    -------
    boxes : ndarray (F, 5) float32
        ``x1, y1, x2, y2, probability`` per face, best first.
    landmarks : ndarray (F, 5, 2) float32
        ``(x, y)`` of left eye, right eye, nose, left and right mouth corners.

    Shape
    -----
    ``(H, W, 3)`` -> ``(F, 5)``, ``(F, 5, 2)``.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"detect_faces: image must be (H, W, 3) RGB, got shape {img.shape}")
    if img.dtype.kind not in "uif":
        raise TypeError(f"detect_faces: image must be numeric, got dtype {img.dtype}")
    if not (0 < factor < 1):
        raise ValueError(f"detect_faces: factor must be in (0, 1), got {factor!r}")
    if not min_face > 0:
        raise ValueError(f"detect_faces: min_face must be positive, got {min_face!r}")
    if len(thresholds) != 3:
        raise ValueError(f"detect_faces: thresholds must be 3 numbers, got {thresholds!r}")
    if nets is None:
        from .models import mtcnn_nets
        nets = mtcnn_nets()
    pnet, rnet, onet = nets
    x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    h, w = x.shape[1:]
    empty = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    # Stage 1: PNet over the pyramid.
    m = 12.0 / min_face
    scales, side = [], min(h, w) * m
    scale = m
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    found = []
    for scale in scales:
        level = F.interpolate(x[None], size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        reg, prob = pnet(_normalise(level))
        prob = np.asarray(prob)[0, 1]
        ys, xs = np.nonzero(prob >= thresholds[0])
        if ys.size == 0:
            continue
        cells = np.stack([xs, ys], axis=1).astype(np.float32)
        q1 = np.floor((2 * cells + 1) / scale)
        q2 = np.floor((2 * cells + 12) / scale)
        boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], np.asarray(reg)[0][:, ys, xs].T], axis=1)
        found.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5)])
    if not found:
        return empty
    boxes = np.concatenate(found)
    boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = np.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                      boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh, boxes[:, 4]], axis=1)
    boxes = _square(boxes)

    # Stage 2: RNet refines.
    valid, crops = _crops(x, boxes, 24)
    boxes = boxes[valid]
    if len(boxes) == 0:
        return empty
    reg, prob = (np.asarray(t) for t in rnet(crops))
    keep = prob[:, 1] > thresholds[1]
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    reg = reg[keep]
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = _square(_regress(boxes[pick], reg[pick]))
    if len(boxes) == 0:
        return empty

    # Stage 3: ONet gives the final boxes and landmarks.
    valid, crops = _crops(x, boxes, 48)
    boxes = boxes[valid]
    if len(boxes) == 0:
        return empty
    reg, marks, prob = (np.asarray(t) for t in onet(crops))
    keep = prob[:, 1] > thresholds[2]
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    reg, marks = reg[keep], marks[keep]
    bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = np.stack([bw * marks[:, :5] + boxes[:, 0:1] - 1, bh * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
    boxes = _regress(boxes, reg)
    pick = _nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
    return boxes[pick].astype(np.float32), points[pick].astype(np.float32)


def draw_faces(image, boxes, landmarks=None, width=3):
    """A Pillow RGB image of ``image`` with the boxes (and landmark dots) drawn."""
    from PIL import Image, ImageDraw

    out = Image.fromarray(np.asarray(image, np.uint8))
    draw = ImageDraw.Draw(out)
    for k, b in enumerate(boxes):
        draw.rectangle([float(b[0]), float(b[1]), float(b[2]), float(b[3])], outline=(255, 40, 40), width=width)
        if len(b) > 4:
            draw.text((float(b[0]) + 2, float(b[1]) + 2), f"{float(b[4]):.2f}", fill=(255, 255, 0))
        if landmarks is not None:
            for px, py in landmarks[k]:
                r = max(1.5, width)
                draw.ellipse([px - r, py - r, px + r, py + r], fill=(40, 255, 40))
    return out
