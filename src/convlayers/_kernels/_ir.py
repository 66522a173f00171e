"""Small LLVM IR helpers for the kernels written as numba intrinsics (``gemm``, ``conv_nhwc``).

numba has no vector types, so the few kernels that need values to stay in
vector registers across a loop build their inner loops in LLVM IR; these are
the pieces they share: the vector width of the running CPU, broadcasts,
pointer arithmetic on array data, the fused/masked memory intrinsics and the
epilogue ``clamp(v·alpha + beta, lo, hi)`` with its NaN count.
"""

from __future__ import annotations

from llvmlite import binding as _llvm_binding
from llvmlite import ir
from numba.core import cgutils


def _vector_bytes():
    """Bytes per vector register numba's code will use here: 64 with AVX-512, else 32."""
    try:
        from .._machine import hardware
        return 64 if "avx512f" in (hardware().get("isa") or ()) else 32
    except Exception:  # noqa: BLE001  (an unreadable machine: the narrower vectors work everywhere)
        return 32


VECTOR_BYTES = _vector_bytes()
VW = VECTOR_BYTES // 4  # float32 lanes
_OPAQUE = _llvm_binding.llvm_version_info >= (16,)  # opaque pointers from LLVM 16

F32, F64, I1, I32, I64 = ir.FloatType(), ir.DoubleType(), ir.IntType(1), ir.IntType(32), ir.IntType(64)


def lanes_of(numba_dtype):
    """Vector lanes for a numba float type (float32: ``VW``, float64: half of it)."""
    return VECTOR_BYTES // (numba_dtype.bitwidth // 8)


class Emitter:
    """IR building for one intrinsic's codegen: ``e = Emitter(context, builder, signature, args, dtype)``.

    ``dtype`` is the numba float type of the data (float32 by default); vectors
    hold :func:`lanes_of` of it.
    """

    def __init__(self, context, builder, signature, args, dtype=None):
        self.context, self.b, self.sig, self.args = context, builder, signature, args
        self.module = builder.module
        bits = 32 if dtype is None else dtype.bitwidth
        self.elem = F32 if bits == 32 else F64
        self.lanes = VECTOR_BYTES * 8 // bits
        self.vec = ir.VectorType(self.elem, self.lanes)
        self.mask_type = ir.VectorType(I1, self.lanes)
        self._suffix = f"v{self.lanes}f{bits}"
        self._ptr = "p0" if _OPAQUE else f"p0{self._suffix}"

    def data(self, i):
        """The element pointer to the data of array argument ``i``."""
        return self.context.make_array(self.sig.args[i])(self.context, self.b, self.args[i]).data

    @staticmethod
    def const(v):
        return ir.Constant(I64, v)

    def splat(self, scalar, vtype=None):
        vtype = self.vec if vtype is None else vtype
        undef = ir.Constant(vtype, ir.Undefined)
        one = self.b.insert_element(undef, scalar, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, undef, ir.Constant(ir.VectorType(I32, self.lanes), [0] * self.lanes))

    def zero(self):
        return ir.Constant(self.vec, [0.0] * self.lanes)

    def vptr(self, base, offset):
        return self.b.bitcast(self.b.gep(base, [offset]), self.vec.as_pointer())

    def load(self, base, offset):
        return self.b.load(self.vptr(base, offset), align=4)

    def lanes_below(self, count):
        """The mask of lanes ``i < count`` (all lanes for count ≥ the lane count)."""
        ivec = ir.VectorType(I64, self.lanes)
        return self.b.icmp_signed("<", ir.Constant(ivec, list(range(self.lanes))), self.splat(count, ivec))

    def _fn(self, name, ret, params):
        return cgutils.get_or_insert_function(self.module, ir.FunctionType(ret, params), name)

    def masked_load(self, base, offset, mask):
        fn = self._fn(f"llvm.masked.load.{self._suffix}.{self._ptr}", self.vec,
                      [self.vec.as_pointer(), I32, self.mask_type, self.vec])
        return self.b.call(fn, [self.vptr(base, offset), ir.Constant(I32, 4), mask, self.zero()])

    def masked_store(self, value, base, offset, mask):
        fn = self._fn(f"llvm.masked.store.{self._suffix}.{self._ptr}", ir.VoidType(),
                      [self.vec, self.vec.as_pointer(), I32, self.mask_type])
        self.b.call(fn, [value, self.vptr(base, offset), ir.Constant(I32, 4), mask])

    def prefetch(self, base, offset):
        """Ask for the cache line holding ``base[offset]`` ahead of its load (a hint: never faults)."""
        i8p = ir.IntType(8).as_pointer()
        fn = self._fn("llvm.prefetch.p0" if _OPAQUE else "llvm.prefetch.p0i8", ir.VoidType(), [i8p, I32, I32, I32])
        ptr = self.b.bitcast(self.b.gep(base, [offset]), i8p)
        self.b.call(fn, [ptr, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def fma(self, a, b, c):
        return self.b.call(self._fn(f"llvm.fma.{self._suffix}", self.vec, [self.vec] * 3), [a, b, c])

    def finish(self, v, alpha, beta, lov, hiv, mask, residual=None):
        """``clamp(v·alpha + beta [+ residual], lo, hi)`` as the scalar epilogues compute it, and the NaN count
        in ``mask``.

        A NaN fails both comparisons and stays NaN, as in ``norm.affine_clamp_row``.
        """
        b = self.b
        v = b.fadd(b.fmul(v, alpha), beta)
        if residual is not None:
            v = b.fadd(v, residual)
        bad = b.bitcast(b.and_(b.fcmp_unordered("uno", v, v), mask), ir.IntType(self.lanes))
        count = b.call(self._fn("llvm.ctpop.i64", I64, [I64]), [b.zext(bad, I64)])
        v = b.select(b.fcmp_ordered("<", v, lov), lov, v)
        v = b.select(b.fcmp_ordered(">", v, hiv), hiv, v)
        return v, count
