"""Hypothesis fuzz of the functional ops' arguments against PyTorch's accept/refuse decision.

For every drawn call, PyTorch either accepts it (then convlayers must accept
it too and give the same shape and values) or refuses it (then convlayers
must refuse it with a ValueError or TypeError — never another exception, a
bare numba/NumPy error).  The few cases where convlayers deliberately decides
otherwise are listed in ``KNOWN`` with the reason.
"""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convlayers.functional as F  # noqa: E402

TF = torch.nn.functional
OUTCOMES = collections.Counter()

# ints around every edge: zero, negative, small, beyond int64
edge_int = st.one_of(st.integers(-3, 6), st.sampled_from([2**63, -(2**63) - 1]))  # no 2**31: both would allocate
small_pos = st.integers(1, 4)
# what a size-like argument may be: an int, a tuple of 1-3 ints, or junk
size_arg = st.one_of(edge_int, st.tuples(edge_int), st.tuples(edge_int, edge_int),
                     st.tuples(edge_int, edge_int, edge_int), st.sampled_from([None, 1.5, 2.0, True, "2", (1.0, 2)]))
nice_size = st.one_of(small_pos, st.tuples(small_pos, small_pos))
arg = st.one_of(nice_size, nice_size, nice_size, nice_size, size_arg)  # mostly valid, often not


def _decide(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return True, fn()
        except Exception as exc:  # noqa: BLE001  (classified by the caller)
            return False, exc


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _check(op, torch_call, ours_call, known=lambda: None):
    t_ok, t_out = _decide(torch_call)
    o_ok, o_out = _decide(ours_call)
    if not o_ok and not isinstance(o_out, (ValueError, TypeError)):
        raise AssertionError(f"{op}: raw {type(o_out).__name__} from convlayers: {o_out}") from o_out
    if t_ok != o_ok:
        reason = known()
        if reason is None:
            raise AssertionError(f"{op}: torch {'accepts' if t_ok else 'refuses (' + str(t_out)[:200] + ')'}, "
                                 f"convlayers {'accepts' if o_ok else 'refuses (' + str(o_out)[:200] + ')'}")
        OUTCOMES[op, f"known: {reason}"] += 1
        return
    OUTCOMES[op, "both accept" if t_ok else "both refuse"] += 1
    if t_ok:
        want, got = _first(t_out).numpy(), np.asarray(_first(o_out))
        assert got.shape == want.shape, (op, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, equal_nan=True)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _arrays(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return x, torch.from_numpy(x.copy())


@SETTINGS
@given(n=st.integers(0, 2), c=st.integers(0, 3), h=st.integers(0, 7), w=st.integers(1, 7),
       kernel_size=arg, stride=st.one_of(st.none(), arg), padding=st.one_of(st.just(0), arg),
       dilation=st.one_of(st.just(1), arg), ceil_mode=st.booleans(),
       return_indices=st.booleans())
def test_max_pool2d(n, c, h, w, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, xt = _arrays((n, c, h, w))
    kw = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
              return_indices=return_indices)
    _check("max_pool2d", lambda: TF.max_pool2d(xt, **kw), lambda: F.max_pool2d(x, **kw), lambda: _known_size(kw, x))


@SETTINGS
@given(n=st.integers(0, 2), c=st.integers(0, 3), h=st.integers(0, 7), w=st.integers(1, 7),
       kernel_size=arg, stride=st.one_of(st.none(), arg), padding=st.one_of(st.just(0), arg), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), divisor_override=st.one_of(st.none(), edge_int))
def test_avg_pool2d(n, c, h, w, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x, xt = _arrays((n, c, h, w))
    kw = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad, divisor_override=divisor_override)
    _check("avg_pool2d", lambda: TF.avg_pool2d(xt, **kw), lambda: F.avg_pool2d(x, **kw), lambda: _known_size(kw, x))


@SETTINGS
@given(n=st.integers(0, 2), c=st.integers(0, 3), h=st.integers(0, 6), w=st.integers(1, 6), output_size=arg,
       which=st.sampled_from(["adaptive_avg_pool2d", "adaptive_max_pool2d"]))
def test_adaptive_pool2d(n, c, h, w, output_size, which):
    x, xt = _arrays((n, c, h, w))
    _check(which, lambda: getattr(TF, which)(xt, output_size), lambda: getattr(F, which)(x, output_size),
           lambda: _known_size({"output_size": output_size}, x))


@SETTINGS
@given(n=st.integers(0, 2), cin=st.integers(0, 4), h=st.integers(1, 7), w=st.integers(1, 7),
       cout=st.integers(0, 4), k=st.tuples(st.integers(0, 3), st.integers(1, 3)),
       groups=st.one_of(st.just(1), st.just(1), small_pos, edge_int),
       stride=st.one_of(st.just(1), arg), padding=st.one_of(st.just(0), arg, st.sampled_from(["same", "valid", "full"])),
       dilation=st.one_of(st.just(1), arg), bias=st.booleans())
def test_conv2d(n, cin, h, w, cout, k, groups, stride, padding, dilation, bias):
    if isinstance(groups, int) and 0 < groups <= 4:
        wshape = (cout, max(cin // groups, 0), *k)
    else:
        wshape = (cout, cin, *k)
    x, xt = _arrays((n, cin, h, w))
    wt_, wtt = _arrays(wshape, 1)
    b, bt = _arrays((cout,), 2) if bias else (None, None)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check("conv2d", lambda: TF.conv2d(xt, wtt, bt, **kw), lambda: F.conv2d(x, wt_, b, **kw),
           lambda: _known_conv(kw, x, wt_))


@SETTINGS
@given(n=st.integers(0, 2), cin=st.integers(0, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       cout=st.integers(1, 3), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       groups=st.one_of(st.just(1), st.just(1), small_pos, edge_int),
       stride=st.one_of(st.just(1), arg), padding=st.one_of(st.just(0), arg), output_padding=st.one_of(st.just(0), arg),
       dilation=st.one_of(st.just(1), arg))
def test_conv_transpose2d(n, cin, h, w, cout, k, groups, stride, padding, output_padding, dilation):
    x, xt = _arrays((n, cin, h, w))
    wt_, wtt = _arrays((cin, cout, *k), 1)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    _check("conv_transpose2d", lambda: TF.conv_transpose2d(xt, wtt, **kw), lambda: F.conv_transpose2d(x, wt_, **kw),
           lambda: _known_size(kw, x))


@SETTINGS
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
       pad=st.lists(st.integers(-4, 4), min_size=0, max_size=6),
       mode=st.sampled_from(["constant", "constant", "reflect", "replicate", "circular"]),
       value=st.sampled_from([None, 0.0, 1.5]))
def test_pad(shape, pad, mode, value):
    x, xt = _arrays(tuple(shape))
    kw = {"mode": mode} if value is None else {"mode": mode, "value": value}
    _check("pad", lambda: TF.pad(xt, tuple(pad), **kw), lambda: F.pad(x, tuple(pad), **kw),
           lambda: _known_pad(x, pad, mode, value))


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), rest=st.lists(st.integers(1, 3), max_size=2),
       training=st.booleans(), momentum=st.sampled_from([0.1, 0.0, 1.0, None]),
       eps=st.sampled_from([1e-5, 0.0, -1.0, 1.0]), stats=st.sampled_from(["float", "none", "uint8", "int64"]),
       affine=st.booleans())
def test_batch_norm(n, c, rest, training, momentum, eps, stats, affine):
    x, xt = _arrays((n, c, *rest))

    def buffers():
        if stats == "none":
            return None, None, None, None
        dt = {"float": np.float32, "uint8": np.uint8, "int64": np.int64}[stats]
        rm, rv = np.zeros(c, dt), np.ones(c, dt)
        return rm, rv, torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())

    rm, rv, rmt, rvt = buffers()
    wgt, wt = _arrays((c,), 1) if affine else (None, None)
    kw = dict(training=training, momentum=momentum, eps=eps)
    _check("batch_norm", lambda: TF.batch_norm(xt, rmt, rvt, wt, wt, **kw),
           lambda: F.batch_norm(x, rm, rv, wgt, wgt, **kw),
           lambda: _known_bn(training, momentum, stats, n, x))


# ---- the deliberate differences --------------------------------------------------------------------------------


def _flat(v):
    return list(v) if isinstance(v, tuple) else [v]


def _known_size(kw, x):
    values = [e for v in kw.values() for e in _flat(v)]
    if any(isinstance(e, bool) for e in values):
        return "bool as an int (torch takes True as 1; convlayers refuses)"
    if any(isinstance(e, float) and e.is_integer() for e in values):
        return "integral float as an int (torch takes 2.0 in some arguments)"
    if x.size == 0 or 0 in x.shape:
        return "empty input (torch accepts some empty batches / refuses some empty planes)"
    return None


def _known_conv(kw, x, w):
    if x.shape[1] == 0:
        return "zero input channels (torch returns an (N, 0, H, W) array; convlayers refuses)"
    if w.shape[0] == 0:
        return "zero output channels"
    return _known_size(kw, x)


def _known_pad(x, pad, mode, value):
    if mode != "constant" and any(p < 0 for p in pad):
        return "negative widths in reflect/replicate/circular (conv-nd's N-d pad)"
    if mode != "constant" and (x.size == 0 or len(pad) // 2 > 3):
        return "non-constant pad of empty or >3 dims"
    if mode != "constant" and value not in (None, 0.0):
        return "value with a non-constant mode"
    return None


def _known_bn(training, momentum, stats, n, x):
    if stats in ("uint8", "int64") and not training:
        return "integer running stats in evaluation (torch refuses; convlayers casts)"
    if momentum is None:
        return "momentum=None (cumulative average in nn.BatchNorm; functional torch refuses)"
    return None


def test_zz_report_outcome_classes():
    """Print the outcome classes (run after the fuzz tests in this file)."""
    for (op, outcome), count in sorted(OUTCOMES.items()):
        print(f"{op:22s} {outcome:70s} {count}")
