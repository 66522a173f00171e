"""What a trained CNN learned: its first-layer filters and one digit's feature maps through every layer.

Examples
--------
>>> import numpy as np
>>> from convlayers.models import digits_cnn
>>> from convlayers.viz.features import layer_outputs
>>> outs = layer_outputs(digits_cnn("standard", width=4).eval(), np.zeros((1, 1, 8, 8), np.float32))
>>> [(name, out.shape) for name, out in outs][:3]
[('0', (1, 4, 8, 8)), ('1', (1, 8, 8, 8)), ('2', (1, 8, 4, 4))]
"""

from __future__ import annotations

import os

import numpy as np

from ._common import GREY_CMAP, SIGNED_CMAP, new_figure, save_png

__all__ = ["train_digits_model", "layer_outputs", "features_figure", "explain_features", "DEMO_RECIPE"]

#: The tour's model and training run: fixed seeds, so the same accuracy on every run.
DEMO_RECIPE = dict(kind="separable", width=16, epochs=3, lr=1e-2, seed=0)


def train_digits_model(kind=DEMO_RECIPE["kind"], width=DEMO_RECIPE["width"], epochs=DEMO_RECIPE["epochs"],
                       lr=DEMO_RECIPE["lr"], seed=DEMO_RECIPE["seed"], subset=None, progress=False):
    """Train a digits CNN with every random choice seeded; returns ``(model, history, test data)``.

    Initialisation (:func:`convlayers.nn.init.manual_seed`), the split and the batch order
    all take ``seed``, so two calls give the same weights and the same accuracy.
    """
    from ..data import load_digits, train_test_split
    from ..models import digits_cnn
    from ..nn import init
    from ..training import fit

    x_train, y_train, x_test, y_test = train_test_split(*load_digits(), seed=0)
    if subset is not None:
        x_train, y_train = x_train[:subset], y_train[:subset]
    init.manual_seed(seed)
    model = digits_cnn(kind, width=width)
    history = fit(model, x_train, y_train, x_test, y_test, epochs=epochs, lr=lr, seed=seed, progress=progress)
    return model.eval(), history, (x_test, y_test)


def layer_outputs(model, x):
    """``[(name, output)]`` of each top-level layer of ``model``, recorded by forward hooks during one forward.

    A hook on every child (``register_forward_hook``) sees each layer's output as the
    model's own ``forward`` produces it, whatever that forward does; the hooks are
    removed afterwards, even if the forward raises.
    """
    outs = []
    handles = [child.register_forward_hook(lambda module, args, out, name=name: outs.append((name, np.asarray(out))))
               for name, child in model.named_children()]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outs


def _conv_weights(model):
    for _, m in model.named_modules():
        w = getattr(m, "weight", None)
        if w is not None and np.asarray(getattr(w, "data", w)).ndim == 4:
            return np.asarray(getattr(w, "data", w))
    raise ValueError("features_figure: the model has no Conv2d layer")


def features_figure(model, image, label=None, prediction=None, max_maps=16):
    """Row 0: the first conv layer's 3x3 filters. Then the digit and each layer's feature maps (first ``max_maps``)."""

    x = np.asarray(image, dtype=np.float32).reshape(1, 1, *np.asarray(image).shape[-2:])
    weights = _conv_weights(model)
    outs = [(n, o) for n, o in layer_outputs(model, x) if o.ndim == 4]
    logits = layer_outputs(model, x)[-1][1].ravel()
    nw = min(weights.shape[0], 16)
    ncol = max(nw, max_maps + 1)
    nrows = 2 + len(outs)
    fig = new_figure(ncol * 0.95 + 1.6, nrows * 1.15 + 1.0)
    gs = fig.add_gridspec(nrows, ncol + 1, width_ratios=[1.6] + [1] * ncol, left=0.01, right=0.99,
                          top=1 - 0.85 / fig.get_figheight(), bottom=0.01, hspace=0.35, wspace=0.12)
    lim = float(np.abs(weights[:nw]).max()) or 1.0
    head = fig.add_subplot(gs[0, 0])
    head.set_axis_off()
    head.text(0.0, 0.5, f"first-layer\nfilters (3x3)\n{weights.shape[0]} in all", fontsize=8, va="center")
    for j in range(nw):
        ax = fig.add_subplot(gs[0, 1 + j])
        ax.set_gid(f"filter{j}")
        ax.imshow(weights[j, 0], cmap=SIGNED_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    lab = fig.add_subplot(gs[1, 0])
    lab.set_axis_off()
    txt = "input digit" + (f"\nlabel {label}" if label is not None else "")
    if prediction is not None:
        txt += f"\npredicted {prediction}"
    lab.text(0.0, 0.5, txt, fontsize=8, va="center")
    ax = fig.add_subplot(gs[1, 1])
    ax.set_gid("digit")
    ax.imshow(x[0, 0], cmap=GREY_CMAP, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    bar = fig.add_subplot(gs[1, 3:min(ncol + 1, 9)])
    bar.set_gid("logits")
    bar.bar(np.arange(logits.size), logits, color=["#b2182b" if i == np.argmax(logits) else "0.6"
                                                  for i in range(logits.size)])
    bar.set_xticks(np.arange(logits.size))
    bar.tick_params(labelsize=7)
    bar.set_title("output scores (logits) per digit class", fontsize=8)
    for r, (name, out) in enumerate(outs):
        row = 2 + r
        mod = dict(model.named_children())[name]
        t = fig.add_subplot(gs[row, 0])
        t.set_axis_off()
        t.text(0.0, 0.5, f"layer {name}: {type(mod).__name__}\n{out.shape[1]} maps {out.shape[2]}x{out.shape[3]}",
               fontsize=7, va="center")
        maps = out[0, :max_maps]
        hi = float(maps.max()) or 1.0
        for j in range(maps.shape[0]):
            ax = fig.add_subplot(gs[row, 1 + j])
            ax.set_gid(f"map{r}-{j}")
            ax.imshow(maps[j], cmap="magma", vmin=min(0.0, float(maps.min())), vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("What a trained CNN computes: its learned first-layer filters (red +, blue -), then one digit's "
                 "feature maps after every layer\n(first %d channels; bright = strong activation; pooling halves "
                 "the size)" % max_maps, fontsize=10)
    return fig


def explain_features(out_dir, model=None, history=None, test=None, index=None):
    """``features.png`` for a seeded digits CNN (trained here unless ``model`` is given).

    ``index``: which test digit; by default the first one the model classifies correctly
    (a wrong answer as the only example would teach the wrong thing).
    """
    if model is None:
        model, history, test = train_digits_model()
    if test is None:
        from ..data import load_digits, train_test_split
        _, _, *test = train_test_split(*load_digits(), seed=0)
    x_test, y_test = test
    if index is None:
        preds = np.argmax(np.asarray(model(x_test[:64])), axis=1)
        hits = np.flatnonzero(preds == y_test[:64])
        index = int(hits[0]) if hits.size else 0
    pred = int(np.argmax(np.asarray(model(x_test[index:index + 1]))))
    png = save_png(features_figure(model, x_test[index, 0], int(y_test[index]), pred),
                   os.path.join(out_dir, "features.png"))
    acc = "" if history is None else (f" Test accuracy {100 * history['test_accuracy'][-1]:.1f}% after "
                                      f"{len(history['test_accuracy'])} epoch(s), seeded: the same every run.")
    weights = _conv_weights(model)
    text = (f"A {model.num_parameters():,}-parameter digits CNN: its first layer learned {weights.shape[0]} "
            f"3x3 filters (like the hand-made edge kernels, but found by training).{acc}\n"
            f"Test digit {index}: label {int(y_test[index])}, predicted {pred}. Each layer turns the 8x8 digit into "
            f"more, smaller maps; the last ones feed global average pooling and a linear layer.")
    return [png], text
