"""Pictures that teach convolution, each a PNG (and a GIF where motion helps), drawn without pyplot.

matplotlib is an optional extra (``pip install 'convlayers[plot]'``), imported only
when a picture is drawn; figures go on an Agg canvas, so no display is needed and
no global backend is changed. By topic:

* :mod:`~convlayers.viz.gallery` — the filter gallery (:func:`gallery_figure`, :func:`save_gallery`).
* :mod:`~convlayers.viz.windows` — the sliding window (:func:`conv_steps`), pooling windows
  (:func:`pool_figure`), the output-size formula (:func:`shapes_figure`).
* :mod:`~convlayers.viz.costs` — efficient convolutions (:func:`efficient_figure`) and receptive
  fields (:func:`receptive_field_figure`).
* :mod:`~convlayers.viz.features` — a trained digits CNN's filters and feature maps (:func:`features_figure`).

Examples
--------
>>> import numpy as np, tempfile, os
>>> from convlayers.viz import save_gallery
>>> img = np.random.default_rng(0).random((16, 16))
>>> p = os.path.join(tempfile.mkdtemp(), "g.png")
>>> save_gallery(p, img, {"blur": img}) == p and os.path.getsize(p) > 0
True
"""

from __future__ import annotations

from ._common import VIEW_PIXELS, MissingExtraError, downsample
from .costs import efficient_figure, explain_efficient, explain_receptive_field, receptive_field_figure
from .features import explain_features, features_figure, layer_outputs, train_digits_model
from .gallery import CAPTIONS, gallery_figure, save_gallery
from .windows import (conv_overview_figure, conv_step_figure, conv_steps, explain_conv, explain_pool,
                      explain_shapes, pool_figure, shapes_figure)

#: ``convlayers explain TOPIC``: topic -> function(out_dir, ...) returning (paths written, text).
TOPICS = {
    "conv": explain_conv,
    "pool": explain_pool,
    "shapes": explain_shapes,
    "efficient": explain_efficient,
    "receptive-field": explain_receptive_field,
    "features": explain_features,
}

__all__ = ["VIEW_PIXELS", "MissingExtraError", "downsample", "CAPTIONS", "gallery_figure", "save_gallery",
           "TOPICS", "conv_steps", "conv_step_figure", "conv_overview_figure", "pool_figure", "shapes_figure",
           "efficient_figure", "receptive_field_figure", "features_figure", "layer_outputs", "train_digits_model",
           "explain_conv", "explain_pool", "explain_shapes", "explain_efficient", "explain_receptive_field",
           "explain_features"]
