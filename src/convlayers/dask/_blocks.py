"""The task graph behind the chunked filters: one task per output block, its halo in thin slices.

An output block owns a rectangle of the output; it reads the virtual input
(the image extended by scipy's boundary rule) over that rectangle grown by the
kernel's size less one.  Along each axis those virtual indices split into runs
that each read one input block, forwards, mirrored (``symm`` at the edge) or
not at all (``fill``); a task gathers the runs' pieces into one buffer — the
only copy — and runs the in-memory 'valid' correlation on it (for the direct
kernel on floats, a band of rows at a time, so that the buffer stays in
cache).  Pieces that are a whole input block are referenced as they are; the
rest are thin slices, cut by one task per input block where that block lives,
so only halos move between workers.

Measured on 4096^2 float32, 1024^2 chunks, sobel: ``map_overlap`` spent 0.24 s
on its halo exchange alone against 0.06 s for the whole in-memory filter; the
earlier pad-and-rechunk version was as slow as dask-image (5.6 vs 5.3 s on
8192^2 on a LocalCluster).
"""

from __future__ import annotations

import threading

import dask.array as da
import numba
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import filters as _filters


def margins(k, mode, flipped):
    """(before, after) extension of an axis for a kernel of length k (the in-memory rule)."""
    if mode == "full":
        return k - 1, k - 1
    if mode == "valid":
        return 0, 0
    before = k // 2 if flipped else (k - 1) // 2
    return before, k - 1 - before


def _merge_small(chunks, minimum):
    """Merge chunks smaller than ``minimum`` into a neighbour (the last one into the one before)."""
    out = []
    for c in chunks:
        if out and out[-1] < minimum:
            out[-1] += c
        else:
            out.append(c)
    while len(out) > 1 and out[-1] < minimum:
        last = out.pop()
        out[-1] += last
    return tuple(out)


def plan(n, chunks, k, mode, flipped):
    """(merged input chunks, output chunks, before) for one axis.

    Input block ``i`` (rows ``[s, e)``) owns output rows ``[s, e)``, the last one every
    row up to the output's end (``n + before + after - k + 1`` rows in all); output row
    ``o`` reads virtual input rows ``[o - before, o - before + k)``.  Chunks smaller than
    the kernel's margin are merged with a neighbour, so that a halo comes from at most
    one block on each side.
    """
    before, after = margins(k, mode, flipped)
    n_out = n + before + after - k + 1
    merged = list(_merge_small(chunks, max(before, after, 1)))
    # The last block must own at least one output row ('valid' has fewer outputs than inputs).
    while len(merged) > 1 and n - merged[-1] >= n_out:
        last = merged.pop()
        merged[-1] += last
    starts = np.cumsum([0] + merged[:-1])
    owned = [min(int(s) + c, n_out) - int(s) for s, c in zip(starts, merged)]
    owned[-1] = n_out - int(starts[-1])
    return tuple(merged), tuple(owned), before


def _source(v, n, boundary):
    """Source index of virtual index ``v`` on an axis of length ``n`` (-1: the fill value)."""
    if 0 <= v < n:
        return v
    if boundary == "fill":
        return -1
    if boundary == "wrap":
        return v % n
    r = v % (2 * n)  # symmetric: the edge sample repeated, period 2n
    return r if r < n else 2 * n - 1 - r


def segments(v0, v1, n, boundary, block_starts):
    """Split virtual indices [v0, v1) into runs that each read one input block in one direction.

    Each run is ``[dst0, dst1, block, first, step]``: destination positions, the
    input block (None: the fill value), the first source index inside the block
    and the direction (+1, or -1 for a mirrored run).  Indices inside the image
    are split at block boundaries arithmetically; only the few outside it (the
    kernel's margin) are mapped one by one through the boundary rule.
    """
    sizes = np.diff(np.append(block_starts, n))
    runs = []

    def add(d, src):
        blk = None if src < 0 else int(np.searchsorted(block_starts, src, side="right") - 1)
        local = 0 if blk is None else src - int(block_starts[blk])
        if runs and runs[-1][2] == blk:
            run = runs[-1]
            if blk is None:
                run[1] = d + 1
                return
            length = run[1] - run[0]
            if local == run[3] + length * run[4] or (length == 1 and abs(local - run[3]) == 1):
                if length == 1:
                    run[4] = local - run[3]
                run[1] = d + 1
                return
        runs.append([d, d + 1, blk, local, 1])

    inner0, inner1 = max(v0, 0), min(v1, n)
    for v in range(v0, min(v1, 0)):
        add(v - v0, _source(v, n, boundary))
    v = inner0
    while v < inner1:  # whole stretches of one block at a time
        blk = int(np.searchsorted(block_starts, v, side="right") - 1)
        stop = min(inner1, int(block_starts[blk]) + int(sizes[blk]))
        local = v - int(block_starts[blk])
        if runs and runs[-1][2] == blk and runs[-1][4] == 1 and runs[-1][3] + runs[-1][1] - runs[-1][0] == local:
            runs[-1][1] = stop - v0
        else:
            runs.append([v - v0, stop - v0, blk, local, 1])
        v = stop
    for v in range(max(v0, n), v1):
        add(v - v0, _source(v, n, boundary))
    return runs


FILTER_PREFIX = "convlayers-filter-"  # the name of a chunked filter's output layer (see storage.store)

_scratch = threading.local()


def _buffer(shape, dtype, which="buf"):
    """A per-thread buffer (``which`` names it) for the assembled input, reused from task to task.

    A fresh multi-megabyte array comes back from the allocator as untouched pages,
    and faulting them in on every task cost as much as the filtering itself.
    """
    need = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = getattr(_scratch, which, None)
    if buf is None or buf.size < need:
        buf = np.empty(max(need, 1), dtype=np.uint8)
        setattr(_scratch, which, buf)
    return buf[:need].view(dtype).reshape(shape)


# Bytes of a block's input assembled and filtered at a time on the banded path (2-core Intel Xeon VM,
# AVX-512, 2 MiB L2 per core).  Gathering the whole 16 MiB block first and filtering it afterwards took
# 12.3 ms a block against 3.0 ms banded (one 2048^2 float32 Sobel block, one thread).  Band sizes in the
# whole 16384^2 run stored on the threaded scheduler, medians of 7 alternated: 256 KiB 0.336 s,
# 512 KiB 0.321, 1 MiB 0.302, 2 MiB 0.291, 8 MiB 0.294.  Other machines scale it to their own L2
# (band_bytes); None means that, a number (tests) overrides it.
_BAND_BYTES = None


def band_bytes():
    """Bytes of input rows per band: the 2 MiB measured best with a 2 MiB L2, scaled to this machine's L2."""
    if _BAND_BYTES is not None:
        return _BAND_BYTES
    from .. import _machine
    return _machine.scale_to_cache(1 << 21, "l2", 1 << 21, 1 << 18, 1 << 23)


def banded(kernel, method, dtype):
    """Whether the in-memory filter runs ``kernel`` on ``dtype`` with the direct kernel and no dtype change.

    That is what the banded path calls, so that its sums are the in-memory ones:
    float32/float64 outputs (integers and complex go through a wider work dtype),
    and ``method='direct'``, or ``'auto'`` below the separable threshold where
    ``filters._choose_method`` (asked here, not restated) picks the direct kernel.
    """
    if np.dtype(dtype) not in (np.float32, np.float64):
        return False
    if method == "direct":
        return True
    # below the separable threshold the factors do not matter, so the in-memory rule needs none
    return (method == "auto" and kernel.size < _filters._SEPARABLE_MIN_TAPS
            and _filters._choose_method(kernel.shape, None, False, np.dtype(dtype).itemsize) == "direct")


class BlockFilter:
    """One output block's task: assemble its virtual input from pieces, then filter it.

    With ``banded`` (see :func:`banded`) the input is assembled a band of rows at a
    time into a cache-sized per-thread buffer and each band goes straight to the
    direct kernel, so a block is read from memory once and its output written once;
    otherwise the whole input is gathered and the in-memory 'valid' call runs on it.
    """

    def __init__(self, pairs, shape, fill, kernel, method, out_dtype, banded=False, picks=None):
        self.pairs, self.shape, self.fill = pairs, shape, fill
        self.picks = picks  # per piece: its position in a halo tuple, or -1 for a whole block
        self.kernel, self.method, self.out_dtype = kernel, method, out_dtype
        self.banded = banded

    def out_shape(self, lead):
        kh, kw = self.kernel.shape
        return tuple(lead) + (self.shape[0] - kh + 1, self.shape[1] - kw + 1)

    def _picked(self, pieces):
        """The pieces (a halo tuple's own slice picked out) and the leading (stack) shape."""
        if self.picks is not None:
            pieces = [p if k < 0 else p[k] for p, k in zip(pieces, self.picks)]
        return pieces, (np.shape(pieces[0])[:-2] if pieces else ())

    def __call__(self, pieces):
        pieces, lead = self._picked(pieces)
        out = np.empty(self.out_shape(lead), dtype=self.out_dtype)
        self.run(pieces, lead, out)
        return out

    def into(self, target, region, pieces):
        """Filter straight into ``target[region]`` (a store without dask's copy of every block); returns None."""
        pieces, lead = self._picked(pieces)
        opened = target.open() if hasattr(target, "open") else target
        out = opened[region]
        if out.shape != self.out_shape(lead) or out.dtype != self.out_dtype:
            raise ValueError(f"store: target region {region} is {out.shape} {out.dtype}, "
                             f"the block is {self.out_shape(lead)} {self.out_dtype}")
        self.run(pieces, lead, out, opened.reshape(-1) if opened.flags.c_contiguous else None)
        if opened is not target and hasattr(opened, "flush"):
            opened.flush()

    def run(self, pieces, lead, out, flat=None):
        """Filter the assembled pieces into ``out`` (any strides: a fresh block or a region of a target).

        ``flat``: the C-ordered array ``out`` is a region of, raveled (a view), if it is one."""
        # dask runs blocks side by side already: a block's filter on one thread (numba's thread count is
        # per thread), rather than each block handing rows to helpers that fight the other blocks for cores
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            if self.banded:
                self._bands(pieces, lead, out, flat)
            else:
                self._whole(pieces, lead, out)
        finally:
            numba.set_num_threads(threads)

    def _sources(self, pieces):
        """(rows, cols, piece view or None) per pair; mirrored runs are read backwards from their slice."""
        it = iter(pieces)
        return [(r0, r1, c0, c1, next(it)[..., ::rstep, ::cstep] if has_src else None)
                for (r0, r1, rstep), (c0, c1, cstep), has_src in self.pairs]

    def _whole(self, pieces, lead, out):
        buf = _buffer(lead + self.shape, self.out_dtype)
        for r0, r1, c0, c1, src in self._sources(pieces):
            buf[..., r0:r1, c0:c1] = self.fill if src is None else src
        for idx in np.ndindex(lead):
            out[idx] = _filters.correlate2d(buf[idx], self.kernel, mode="valid", method=self.method)

    def _bands(self, pieces, lead, out, flat):
        from .._kernels import filters as K

        kh, kw = self.kernel.shape
        height, width = self.shape
        oh = height - kh + 1
        step = max(1, band_bytes() // (width * np.dtype(self.out_dtype).itemsize) - kh + 1)
        kern = np.ascontiguousarray(self.kernel, dtype=self.out_dtype)  # the in-memory work dtype
        # identity maps: the band is already the extended input, so every column is an interior one
        rmap = np.arange(min(step, oh) + kh - 1, dtype=np.int64)
        cmap = np.arange(width, dtype=np.int64)
        fillrow = np.zeros(width, dtype=self.out_dtype)
        sources = self._sources(pieces)
        buf = _buffer((min(step, oh) + kh - 1, width), self.out_dtype)
        # Into a region of a bigger array (store) the rows are not contiguous: the kernel compiled for any
        # strides ran 3.9x slower (7.1 vs 1.8 ms, a 2048^2 3x3 block), so the rows are written through the
        # raveled target; a target that is not C-ordered gets each band through a cached buffer.
        strided = not out.flags.c_contiguous
        staged = strided and flat is None
        obuf = _buffer((min(step, oh), out.shape[-1]), self.out_dtype, "obuf") if staged else None
        itemsize = np.dtype(self.out_dtype).itemsize
        for idx in np.ndindex(lead):
            for o0 in range(0, oh, step):
                o1 = min(o0 + step, oh)
                b0, b1 = o0, o1 + kh - 1  # the band's input rows
                band = buf[:b1 - b0]
                for r0, r1, c0, c1, src in sources:
                    d0, d1 = max(r0, b0), min(r1, b1)
                    if d0 < d1:
                        band[d0 - b0:d1 - b0, c0:c1] = self.fill if src is None else src[idx][d0 - r0:d1 - r0]
                if staged:
                    K.correlate_folded(band, rmap, cmap, 0, fillrow, kern, obuf[:o1 - o0], 0, o1 - o0)
                    out[idx][o0:o1] = obuf[:o1 - o0]
                elif strided:
                    view = out[idx][o0:o1]
                    start = (view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // itemsize
                    K.correlate_band_into(band, rmap, fillrow, kern, flat, start, view.strides[0] // itemsize,
                                          view.shape[1], o1 - o0)
                else:
                    K.correlate_folded(band, rmap, cmap, 0, fillrow, kern, out[idx][o0:o1], 0, o1 - o0)


def _slices(block, slices):
    """The thin slices of one input block that its neighbours read, as views."""
    return tuple(block[s] for s in slices)


def _piece(run, size):
    """The slice of a block a run reads, and whether that is the whole block."""
    first, last = run[3], run[3] + (run[1] - run[0] - 1) * run[4]
    lo, hi = min(first, last), max(first, last) + 1
    return slice(lo, hi), (lo == 0 and hi == size)


def lazy_correlate(x, kernel, mode, boundary, fill, method, flipped, out_dtype):
    """``mode`` correlation of the last two axes of dask array ``x`` (already ``out_dtype``) with ``kernel``."""
    kh, kw = kernel.shape
    h, w = x.shape[-2:]
    rows, own_r, br = plan(h, x.chunks[-2], kh, mode, flipped)
    cols, own_c, bc = plan(w, x.chunks[-1], kw, mode, flipped)
    x = x.rechunk(x.chunks[:-2] + (rows, cols))
    row_starts, col_starts = np.cumsum((0,) + rows[:-1]), np.cumsum((0,) + cols[:-1])
    token = tokenize(x, kernel, mode, boundary, fill, method, flipped)
    name, piece_name = f"{FILTER_PREFIX}{token}", f"convlayers-halo-{token}"
    row_runs = [segments(int(s) - br, int(s) + n + kh - 1 - br, h, boundary, row_starts)
                for s, n in zip(row_starts, own_r)]
    col_runs = [segments(int(s) - bc, int(s) + n + kw - 1 - bc, w, boundary, col_starts)
                for s, n in zip(col_starts, own_c)]
    fast = banded(kernel, method, out_dtype)
    # First every block task's pieces, then one slicing task per input block for all the thin slices its
    # neighbours read (a tuple): one getitem task per piece made 640 tasks for 64 blocks of a 3x3 filter,
    # and the threaded scheduler's bookkeeping for them was 0.048 s of a ~0.35 s run (16384^2, 2048^2
    # chunks, 2-core Intel Xeon VM); on a cluster a neighbour now receives the block's whole halo tuple,
    # a few thin strips against a block of megabytes.
    halos = {}  # (row block, col block) -> {(row range, col range): position in its tuple}
    tasks = []
    for i, rruns in enumerate(row_runs):
        for j, cruns in enumerate(col_runs):
            pairs, refs = [], []
            for rr in rruns:
                for cr in cruns:
                    has_src = rr[2] is not None and cr[2] is not None
                    # a mirrored run is read backwards from its slice
                    pairs.append(((rr[0], rr[1], rr[4]), (cr[0], cr[1], cr[4]), has_src))
                    if not has_src:
                        continue
                    (rs, rwhole), (cs, cwhole) = _piece(rr, rows[rr[2]]), _piece(cr, cols[cr[2]])
                    if rwhole and cwhole:
                        refs.append((rr[2], cr[2], -1))  # the whole block: no slicing
                    else:
                        own = halos.setdefault((rr[2], cr[2]), {})
                        refs.append((rr[2], cr[2], own.setdefault((rs.start, rs.stop, cs.start, cs.stop), len(own))))
            task = BlockFilter(tuple(pairs), (own_r[i] + kh - 1, own_c[j] + kw - 1), fill, kernel, method,
                               out_dtype, fast, tuple(r[2] for r in refs))
            tasks.append((i, j, task, refs))
    layer = {}
    for lead in np.ndindex(*x.numblocks[:-2]):
        for (bi, bj), own in halos.items():
            slices = tuple((Ellipsis, slice(r0, r1), slice(c0, c1)) for r0, r1, c0, c1 in own)
            layer[(piece_name, *lead, bi, bj)] = (_slices, (x.name, *lead, bi, bj), slices)
        for i, j, task, refs in tasks:
            layer[(name, *lead, i, j)] = (task, [(x.name if pick < 0 else piece_name, *lead, bi, bj)
                                                 for bi, bj, pick in refs])
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    return da.Array(graph, name, chunks=x.chunks[:-2] + (own_r, own_c), dtype=out_dtype,
                    meta=np.empty((0,) * x.ndim, out_dtype))
