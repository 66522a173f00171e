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


def _vector_width():
    """Floats per vector register numba's code will use here: 16 with AVX-512, else 8."""
    try:
        from .._machine import hardware
        return 16 if "avx512f" in (hardware().get("isa") or ()) else 8
    except Exception:  # noqa: BLE001  (an unreadable machine: the narrower vectors work everywhere)
        return 8


VW = _vector_width()
_PTR = "p0" if _llvm_binding.llvm_version_info >= (16,) else f"p0v{VW}f32"  # opaque pointers from LLVM 16

F32, I1, I32, I64 = ir.FloatType(), ir.IntType(1), ir.IntType(32), ir.IntType(64)
VEC = ir.VectorType(F32, VW)
MASK = ir.VectorType(I1, VW)


class Emitter:
    """IR building for one intrinsic's codegen: ``e = Emitter(context, builder, signature, args)``."""

    def __init__(self, context, builder, signature, args):
        self.context, self.b, self.sig, self.args = context, builder, signature, args
        self.module = builder.module

    def data(self, i):
        """The float pointer to the data of array argument ``i``."""
        return self.context.make_array(self.sig.args[i])(self.context, self.b, self.args[i]).data

    @staticmethod
    def const(v):
        return ir.Constant(I64, v)

    def splat(self, scalar, vtype=VEC):
        undef = ir.Constant(vtype, ir.Undefined)
        one = self.b.insert_element(undef, scalar, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, undef, ir.Constant(ir.VectorType(I32, VW), [0] * VW))

    def vptr(self, base, offset):
        return self.b.bitcast(self.b.gep(base, [offset]), VEC.as_pointer())

    def load(self, base, offset):
        return self.b.load(self.vptr(base, offset), align=4)

    def lanes_below(self, count):
        """The mask of lanes ``i < count`` (all lanes for count ≥ VW)."""
        lanes = ir.Constant(ir.VectorType(I64, VW), list(range(VW)))
        return self.b.icmp_signed("<", lanes, self.splat(count, ir.VectorType(I64, VW)))

    def _fn(self, name, ret, params):
        return cgutils.get_or_insert_function(self.module, ir.FunctionType(ret, params), name)

    def masked_load(self, base, offset, mask):
        fn = self._fn(f"llvm.masked.load.v{VW}f32.{_PTR}", VEC, [VEC.as_pointer(), I32, MASK, VEC])
        return self.b.call(fn, [self.vptr(base, offset), ir.Constant(I32, 4), mask, ir.Constant(VEC, [0.0] * VW)])

    def masked_store(self, value, base, offset, mask):
        fn = self._fn(f"llvm.masked.store.v{VW}f32.{_PTR}", ir.VoidType(), [VEC, VEC.as_pointer(), I32, MASK])
        self.b.call(fn, [value, self.vptr(base, offset), ir.Constant(I32, 4), mask])

    def fma(self, a, b, c):
        return self.b.call(self._fn(f"llvm.fma.v{VW}f32", VEC, [VEC, VEC, VEC]), [a, b, c])

    def finish(self, v, alpha, beta, lov, hiv, mask, residual=None):
        """``clamp(v·alpha + beta [+ residual], lo, hi)`` as the scalar epilogues compute it, and the NaN count
        in ``mask``.

        A NaN fails both comparisons and stays NaN, as in ``norm.affine_clamp_row``.
        """
        b = self.b
        v = b.fadd(b.fmul(v, alpha), beta)
        if residual is not None:
            v = b.fadd(v, residual)
        bad = b.bitcast(b.and_(b.fcmp_unordered("uno", v, v), mask), ir.IntType(VW))
        count = b.call(self._fn("llvm.ctpop.i64", I64, [I64]), [b.zext(bad, I64)])
        v = b.select(b.fcmp_ordered("<", v, lov), lov, v)
        v = b.select(b.fcmp_ordered(">", v, hiv), hiv, v)
        return v, count
