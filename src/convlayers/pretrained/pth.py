"""Read PyTorch ``.pth`` / ``.pt`` checkpoints without pickle.

A PyTorch checkpoint is a pickle whose tensors point (by "persistent id") at
raw storages kept beside it: in a zip (``<root>/data.pkl`` plus
``<root>/data/<key>``, torch >= 1.6) or, in the legacy format, as a stream of
five pickles followed by the storages' bytes.  Unpickling runs any callable
the file names, so this module never unpickles: it walks the opcodes with
:func:`pickletools.genops` and interprets a small, closed subset itself,
building only dicts / OrderedDicts, lists, tuples, str, bytes, int, float,
bool, None and tensors (``torch._utils._rebuild_tensor_v2`` /
``_rebuild_parameter`` over a storage).  Any other global
(``os.system``, ``builtins.eval``...) is refused with a ``ValueError`` before
anything is called -- nothing is ever called.  Each tensor's dtype, sizes,
strides and offset are checked against the storage's real length before a
view is taken, and every tensor is returned as a fresh contiguous ndarray.
"""

from __future__ import annotations

import collections
import io
import os
import pickletools
import zipfile

import numpy as np

__all__ = ["load_pth", "MAX_BYTES"]

#: Refuse checkpoints (the file, and the sum of claimed storages) larger than this.
MAX_BYTES = 4 << 30

# Legacy storage class names -> dtype.  bfloat16 (no NumPy dtype) is widened to float32 exactly.
_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"), ("builtins", "set"), ("builtins", "frozenset")}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name


class _Storage:
    __slots__ = ("dtype", "key", "numel")

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


def _refuse(where, what):
    raise ValueError(f"{where}: refusing to load: {what} (only state dicts of tensors are read; "
                     "the file names code that pickle would run)")


def _global(where, module, name):
    if (module, name) in _ALLOWED or (module == "torch" and name in _STORAGES):
        return _Global(module, name)
    _refuse(where, f"the pickle references the global {module}.{name}")


def _interpret(stream, where, persistent_load, make_tensor=None):
    """Evaluate one pickle from ``stream`` (up to its STOP) with the closed opcode subset."""
    stack, marks, memo = [], [], {}

    def pop_mark():
        if not marks:
            raise ValueError(f"{where}: corrupt pickle (no MARK)")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        ops = pickletools.genops(stream)
        for op, arg, _pos in ops:
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1:
                    raise ValueError(f"{where}: corrupt pickle (stack of {len(stack)} at STOP)")
                return stack[0]
            if name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
                        "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINBYTES",
                        "SHORT_BINBYTES", "BINBYTES8", "SHORT_BINSTRING", "BINSTRING", "STRING"):
                if name == "INT" and isinstance(arg, bool):
                    stack.append(arg)
                else:
                    stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "EMPTY_SET":
                stack.append(set())
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise ValueError(f"{where}: corrupt pickle (stack underflow)")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "DICT":
                items = pop_mark()
                stack.append(dict(zip(items[::2], items[1::2])))
            elif name == "APPEND":
                value = stack.pop()
                stack[-1].append(value)
            elif name == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif name == "ADDITEMS":
                items = pop_mark()
                stack[-1].update(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                _setitem(stack[-1], key, value, where)
            elif name == "SETITEMS":
                items = pop_mark()
                for key, value in zip(items[::2], items[1::2]):
                    _setitem(stack[-1], key, value, where)
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                if arg not in memo:
                    raise ValueError(f"{where}: corrupt pickle (memo key {arg} unset)")
                stack.append(memo[arg])
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                stack.append(_global(where, module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise ValueError(f"{where}: corrupt pickle (STACK_GLOBAL of non-strings)")
                stack.append(_global(where, module, attr))
            elif name == "BINPERSID":
                stack.append(persistent_load(stack.pop()))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(_reduce(func, args, where, make_tensor or _tensor))
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                # OrderedDict state_dicts carry `_metadata` (per-module versions) as BUILD state: ignored,
                # as a state dict's values are what a model loads.
                if not isinstance(target, dict) or not isinstance(state, (dict, type(None))):
                    _refuse(where, f"BUILD on a {type(target).__name__}")
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            else:
                _refuse(where, f"the pickle uses the opcode {name}")
    except (IndexError, AttributeError, TypeError) as exc:
        raise ValueError(f"{where}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: corrupt or truncated pickle ({exc})") from None
    raise ValueError(f"{where}: truncated pickle (no STOP)")


def _setitem(target, key, value, where):
    if not isinstance(target, dict):
        raise ValueError(f"{where}: corrupt pickle (SETITEM on a {type(target).__name__})")
    try:
        target[key] = value
    except TypeError:
        raise ValueError(f"{where}: corrupt pickle (unhashable key {type(key).__name__})") from None


def _reduce(func, args, where, make_tensor):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        _refuse(where, "REDUCE of something other than an allowed global")
    full = (func.module, func.name)
    if full == ("collections", "OrderedDict"):
        if args not in ((), ([],)):
            _refuse(where, "OrderedDict built from arguments")
        return collections.OrderedDict()
    if full in (("builtins", "set"), ("builtins", "frozenset")):
        items = args[0] if args else []
        return (set if func.name == "set" else frozenset)(items)
    if full == ("torch._utils", "_rebuild_parameter"):
        if len(args) < 1 or not (args[0] is None or isinstance(args[0], np.ndarray)):
            _refuse(where, "_rebuild_parameter without a tensor")
        return args[0]
    if full == ("torch._utils", "_rebuild_tensor_v2"):
        if len(args) < 4:
            raise ValueError(f"{where}: corrupt tensor record ({len(args)} arguments)")
        return make_tensor(where, *args[:4])
    _refuse(where, f"calling {func.module}.{func.name}")


def _tensor(where, storage, offset, size, stride):
    if not isinstance(storage, tuple) or len(storage) != 2 or not isinstance(storage[0], _Storage):
        raise ValueError(f"{where}: corrupt tensor record (storage is not a persistent storage)")
    meta, data = storage
    ints = (int, np.integer)
    if (not isinstance(offset, ints) or isinstance(offset, bool) or not isinstance(size, tuple)
            or not isinstance(stride, tuple) or len(size) != len(stride)
            or not all(isinstance(v, ints) and not isinstance(v, bool) for v in size + stride)):
        raise ValueError(f"{where}: corrupt tensor record (offset {offset!r}, size {size!r}, stride {stride!r})")
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ValueError(f"{where}: tensor of storage {meta.key!r} has a negative offset, size or stride "
                         f"(offset {offset}, size {size}, stride {stride})")
    bf16 = isinstance(meta.dtype, str)
    dtype = np.dtype(np.uint16 if bf16 else meta.dtype)
    if 0 in size:
        out = np.zeros(size, dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= meta.numel:
            raise ValueError(f"{where}: tensor of storage {meta.key!r} (offset {offset}, size {size}, stride "
                             f"{stride}) reaches element {last}, past the storage's {meta.numel} elements")
        flat = data.view(dtype)
        out = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                              strides=tuple(s * dtype.itemsize for s in stride)).copy()
    if bf16:  # bfloat16 is the top half of a float32: widen exactly
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _persistent(where, read_storage, claimed):
    cache = {}

    def load(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            _refuse(where, f"a persistent id that is not a storage: {pid!r:.80}")
        _, cls, key, _location, numel = pid[:5]
        if not (isinstance(cls, _Global) and cls.module == "torch" and cls.name in _STORAGES):
            raise ValueError(f"{where}: corrupt storage record (type {cls!r:.60})")
        if not isinstance(key, str) or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise ValueError(f"{where}: corrupt storage record (key {key!r:.40}, numel {numel!r:.40})")
        if len(pid) > 5 and pid[5] is not None:
            _refuse(where, "legacy storage views")
        dtype = _STORAGES[cls.name]
        itemsize = 2 if isinstance(dtype, str) else np.dtype(dtype).itemsize
        if key not in cache:
            claimed[0] += numel * itemsize
            if claimed[0] > MAX_BYTES:
                raise ValueError(f"{where}: storages claim over {MAX_BYTES:,} bytes")
            cache[key] = (_Storage(dtype, key, numel), read_storage(key, numel, itemsize))
        elif cache[key][0].numel != numel or cache[key][0].dtype != dtype:
            raise ValueError(f"{where}: storage {key!r} is described twice, differently")
        return cache[key]

    return load


def _load_zip(path, where):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{where}: not a readable PyTorch zip checkpoint ({exc})") from None
    with archive:
        names = archive.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or \
            [n for n in names if n == "data.pkl"]
        if len(pkls) != 1:
            raise ValueError(f"{where}: a PyTorch zip checkpoint has one <root>/data.pkl, found {len(pkls)}")
        root = pkls[0][:-len("data.pkl")]
        infos = {i.filename: i for i in archive.infolist()}
        if sum(i.file_size for i in infos.values()) > MAX_BYTES:
            raise ValueError(f"{where}: the archive claims over {MAX_BYTES:,} bytes")
        order = "little"
        if root + "byteorder" in infos:
            order = archive.read(root + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise ValueError(f"{where}: unknown byteorder {order!r}")

        def read_storage(key, numel, itemsize):
            name = f"{root}data/{key}"
            if name not in infos or "/" in key or key in ("", ".", ".."):
                raise ValueError(f"{where}: storage {key!r} is missing from the archive")
            need = numel * itemsize
            if infos[name].file_size < need:
                raise ValueError(f"{where}: storage {key!r} holds {infos[name].file_size} bytes, "
                                 f"smaller than the {need} claimed ({numel} × {itemsize})")
            raw = np.frombuffer(archive.read(name)[:need], np.uint8)
            if order == "big" and itemsize > 1:
                raw = raw.view(f">u{itemsize}").astype(f"<u{itemsize}").view(np.uint8)
            return raw

        try:
            pickle_bytes = archive.read(pkls[0])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"{where}: corrupt archive ({exc})") from None
        try:
            return _interpret(io.BytesIO(pickle_bytes), where, _persistent(where, read_storage, [0]))
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(f"{where}: corrupt archive ({exc})") from None


def _load_legacy(data, where):
    stream = io.BytesIO(data)

    def plain(label):
        def refuse(pid):
            _refuse(where, f"a persistent id in the {label} header")
        return _interpret(stream, where, refuse)

    if plain("magic") != _LEGACY_MAGIC:
        raise ValueError(f"{where}: neither a zip nor a legacy PyTorch checkpoint (bad magic number)")
    if plain("version") != 1001:
        raise ValueError(f"{where}: unsupported legacy checkpoint protocol version")
    sys_info = plain("sys_info")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ValueError(f"{where}: big-endian legacy checkpoints are not supported")
    records = {}

    def defer(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            _refuse(where, f"a persistent id that is not a storage: {pid!r:.80}")
        # Storages follow the main pickle, so tensors are built after it: record, then patch.
        key = pid[2]
        records.setdefault(key, pid)
        return ("__pending__", key)

    # The main object refers to storages that follow it: interpret it twice -- first to learn the keys
    # (tensors left as placeholders), then with the storages read.
    start = stream.tell()
    _interpret(stream, where, defer, make_tensor=lambda *_: None)
    keys = plain("storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{where}: corrupt legacy checkpoint (storage key list)")
    storages = {}
    for key in keys:
        head = stream.read(8)
        if len(head) != 8:
            raise ValueError(f"{where}: truncated legacy checkpoint (storage {key!r} missing)")
        numel = int.from_bytes(head, "little", signed=True)
        if key not in records:
            raise ValueError(f"{where}: storage {key!r} is not used by the checkpoint")
        dtype = _STORAGES.get(getattr(records[key][1], "name", ""), None)
        itemsize = 2 if isinstance(dtype, str) else np.dtype(dtype or np.uint8).itemsize
        if numel < 0 or numel != records[key][4]:
            raise ValueError(f"{where}: storage {key!r} has {numel} elements, the pickle claims {records[key][4]}")
        raw = stream.read(numel * itemsize)
        if len(raw) != numel * itemsize:
            raise ValueError(f"{where}: storage {key!r} holds {len(raw)} bytes, smaller than the "
                             f"{numel * itemsize} claimed")
        storages[key] = np.frombuffer(raw, np.uint8)
    missing = set(records) - set(storages)
    if missing:
        raise ValueError(f"{where}: storages {sorted(missing)} are missing from the checkpoint")

    def read_storage(key, numel, itemsize):
        return storages[key]

    stream.seek(start)
    return _interpret(stream, where, _persistent(where, read_storage, [0]))


def load_pth(path):
    """Read a PyTorch checkpoint (zip or legacy format) into NumPy, without pickle.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.pth`` / ``.pt`` file written by ``torch.save`` (typically a
        ``state_dict``).

    Returns
    -------
    object
        The saved object with every tensor as a contiguous ndarray (bfloat16
        widened to float32); dicts, OrderedDicts, lists, tuples and scalars
        as themselves.

    Raises
    ------
    ValueError
        For a file that is not a checkpoint, is truncated or corrupt, whose
        tensors reach past their storage, or that names any code (a global
        other than ``OrderedDict`` and PyTorch's tensor rebuilders) -- naming
        the file and what was refused.

    Examples
    --------
    >>> import io, zipfile, os, tempfile
    >>> from convlayers.pretrained import load_pth
    >>> path = os.path.join(tempfile.mkdtemp(), "evil.pth")
    >>> with zipfile.ZipFile(path, "w") as z:
    ...     z.writestr("m/data.pkl", b"cos\\nsystem\\n(S'echo hi'\\ntR.")
    >>> load_pth(path)
    Traceback (most recent call last):
    ...
    ValueError: ...evil.pth': refusing to load: the pickle references the global os.system (...)
    """
    path = os.fspath(path)
    where = repr(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise ValueError(f"{where}: {size:,} bytes, over the {MAX_BYTES:,}-byte bound")
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head.startswith(b"PK"):
                return _load_zip(path, where)
            fh.seek(0)
            data = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {where}: {exc.strerror or exc}") from None
    return _load_legacy(data, where)
