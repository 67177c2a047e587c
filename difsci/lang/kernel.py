"""``@ds.kernel`` and ``@ds.func``: parse once, specialise per argument types,
compile through the pipeline, launch (and record on the active Tape)."""
from __future__ import annotations

import builtins
import inspect
import typing
from dataclasses import replace

import numpy as np

from .. import errors
from ..array import Array
from ..config import config
from . import ir
from . import types as T
from .source import parse_function
from ..tape import _stack as _tape_stack
from .specialize import annotation_type, array_info, func_param_type, to_runtime, value_type


def namespace(pyfn):
    """Resolve an outside name as Python would: closure, globals, builtins (read at compile time)."""
    closure = {}
    if pyfn.__closure__:
        for name, cell in zip(pyfn.__code__.co_freevars, pyfn.__closure__):
            try:
                closure[name] = cell.cell_contents
            except ValueError:
                pass
    g = pyfn.__globals__

    def lookup(name):
        if name in closure:
            return closure[name]
        if name in g:
            return g[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise KeyError(name)
    return lookup


def _annotations(pyfn):
    try:
        hints = typing.get_type_hints(pyfn)
    except Exception:
        hints = dict(getattr(pyfn, "__annotations__", {}))
    return hints


class _Source:
    """Parsed once at decoration; lowered per specialisation."""

    def __init__(self, pyfn):
        self.pyfn = pyfn
        self.name = pyfn.__name__
        self.parsed = parse_function(pyfn)
        self.params = [a.arg for a in self.parsed.tree.args.args]
        a = self.parsed.tree.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            node = a.vararg or a.kwarg or (a.kwonlyargs[0] if a.kwonlyargs else None) or \
                (a.defaults[0] if a.defaults else self.parsed.tree)
            raise errors.CompileError("kernel/func parameters must be plain positional names (no defaults, *args or **kw)",
                                      self.parsed.loc(node), "pass every argument explicitly", self.name)
        hints = _annotations(pyfn)
        self.annotations = [annotation_type(hints.get(p)) for p in self.params]
        self._ns = None

    def ns(self, name):
        if self._ns is None:
            self._ns = namespace(self.pyfn)
        return self._ns(name)

    def lower(self, param_types, is_kernel):
        from .frontend.lower import Lowerer
        lw = Lowerer(self.parsed, self.ns, list(zip(self.params, param_types)), is_kernel, self.name)
        return lw.run()


# =================================================================== kernels
class Kernel:
    """A parallel kernel (API.md §3).  Call it to launch; ``.adjoint`` is its reverse mode."""

    def __init__(self, pyfn):
        self.src = _Source(pyfn)
        self.__name__ = self.src.name
        self.__doc__ = pyfn.__doc__
        self._specs: dict = {}
        self._fast: dict = {}
        self._custom_adjoint = None
        self.adjoint = AdjointKernel(self)
        self._last = None

    # ----------------------------------------------------------- typing
    def _arg_types(self, args):
        name = self.src.name
        if len(args) != len(self.src.params):
            raise TypeError(f"kernel `{name}` takes {len(self.src.params)} argument(s) "
                            f"({', '.join(self.src.params)}), got {len(args)}")
        types = []
        for p, ann, v in zip(self.src.params, self.src.annotations, args):
            who = f"kernel `{name}`, parameter `{p}`"
            if isinstance(v, Array):
                _check_device(who, v, args)
            types.append(value_type(v, ann, who))
        return tuple(types)

    def _spec(self, types):
        spec = self._specs.get(types)
        if spec is None:
            fn = self.src.lower(types, True)
            spec = _Spec(self, fn, types)
            self._specs[types] = spec
        self._last = spec
        return spec

    def ir(self, *args) -> ir.Function:
        return self._spec(self._arg_types(args)).fn

    # ----------------------------------------------------------- launch
    def __call__(self, *args):
        key = (config.backend,) + tuple(map(_fast_key, args))   # the backend: arrays' devices are checked
        spec = self._fast.get(key)
        try:
            if spec is None:
                spec = self._spec(self._arg_types(args))
                self._fast[key] = spec
            if _tape_stack and _tape_stack[-1].validating():
                _tape_stack[-1].validated_launch(self, args, spec)    # access rule checked at run time
            else:
                spec.launch(args)
        except (errors.DifsciError, TypeError, ValueError) as e:
            raise errors.user_facing(e) from None
        if _tape_stack:
            _tape_stack[-1].record(self, args, spec)

    @property
    def source(self) -> str:
        spec = self._last or self._annotated_spec()
        return spec.compiled(config.variant())[1]

    def _annotated_spec(self):
        if any(a is None for a in self.src.annotations):
            raise errors.DifsciError(f"`{self.src.name}` has unannotated parameters: call it once (or annotate "
                                     "every parameter) before asking for its source")
        types = tuple(array_info(a.elem, a.ndim) if isinstance(a, T.ArrayType) else a for a in self.src.annotations)
        return self._spec(types)

    def defadjoint(self, fn):
        """Replace the generated adjoint by a hand-written one taking the same arguments.

        ``fn`` is a ``@ds.kernel``, or a plain Python function called with the
        launch's own arguments (ds.Arrays), which launches kernels (or uses
        numpy) on their ``.grad`` buffers — e.g. an implicit solve whose
        adjoint is another solve.
        """
        self._custom_adjoint = fn
        return fn

    def __repr__(self):
        return f"<difsci kernel {self.src.name}>"


class _Spec:
    """One specialisation of a kernel: its IR, compiled code per backend, adjoints."""

    def __init__(self, kernel, fn, types):
        self.kernel = kernel
        self.fn = fn
        self.types = types
        self._compiled = {}
        self._adjoints = {}
        self._fresh = {}          # (id(adjoint IR), gradient arrays zero at entry) -> [variant IR, compiled]
        self.reads, self.writes = _access_sets(fn)
        self.convs = [_converter(t, f"kernel `{kernel.src.name}`, parameter `{p}`")
                      for p, t in zip(kernel.src.params, types)]
        self.vector_args = any(isinstance(t, (T.Vec, T.Mat)) for t in types)

    def compiled(self, backend):
        c = self._compiled.get(backend)
        if c is None:
            from .compiler import load
            c = self._compiled[backend] = load(self.fn, backend)
        return c

    def launch(self, args, fn=None, extra=()):
        fn = fn or self.fn
        if config.backend == "cuda":
            from ..config import check_cuda
            check_cuda()
        backend = config.variant()
        rt = [conv(v) for conv, v in zip(self.convs, args) if conv is not None]
        if self.vector_args:   # a vector or matrix argument is passed as its components
            rt = [c for r in rt for c in (r if isinstance(r, tuple) else (r,))]
        rt += extra
        if backend == "cpu" and _small(fn, rt):
            backend = "cpu:small"      # every parallel loop would run serially: the serial build
        call, _, locmap = (self.compiled(backend) if fn is self.fn else self._adjoint_compiled(fn, backend))
        try:
            call(*rt)
        except Exception as e:  # numba compile errors surface on the first call
            if not _drop_broken_cache(call, e):
                _reraise(e, fn, locmap, self.kernel.src.name)
            call(*rt)

    def adjoint_ir(self, active: tuple):
        a = self._adjoints.get(active)
        if a is None:
            from .autodiff.checks import check_access
            from .autodiff.reverse import reverse_kernel
            check_access(self.fn)
            a = self._adjoints[active] = [reverse_kernel(self.fn, list(active)), {}]
            a[0].active_params = tuple(self.kernel.src.params.index(p) for p in active)
        return a

    def fresh_adjoint(self, fn, grads):
        """(adjoint to run, gradients it takes as zero) for a launch of the adjoint ``fn`` whose gradient
        buffers ``grads`` (in ``fn.active_params`` order) are partly pending zero (``Array.zero_grad``).
        Those that a variant of the adjoint zeroes as it goes (passes/fresh.py) go to it as they are;
        the others get their zeros written now."""
        from .passes.fresh import bar_params, takes_fresh
        names = bar_params(fn)
        pending = [(n, g) for n, g in zip(names, grads) if g._pending]
        ok = takes_fresh(fn) if len({id(g) for g in grads}) == len(grads) else frozenset()
        taken = [(n, g) for n, g in pending if n in ok]
        for n, g in pending:
            if n not in ok:
                g._materialize()
        if not taken:
            return fn, ()
        key = (id(fn), frozenset(n for n, _ in taken))
        hit = self._fresh.get(key)
        if hit is None:
            v = replace(fn, fresh=key[1])
            v.active_params, v.scratch = fn.active_params, getattr(fn, "scratch", ())
            hit = self._fresh[key] = [v, {}]
        return hit[0], tuple(g for _, g in taken)

    def _adjoint_compiled(self, fn, backend):
        for ir_fn, cache in list(self._adjoints.values()) + list(self._fresh.values()):
            if ir_fn is fn:
                if backend not in cache:
                    from .compiler import load
                    cache[backend] = load(fn, backend)
                return cache[backend]
        raise errors.InternalCompilerError("launch", "unknown adjoint")


def _small(fn, rt) -> bool:
    """Whether this launch's parallel loops all run serially (backends/small.py).  The predicate is kept
    on ``fn`` by compiler.small_predicate; read here directly, without the import, on every launch."""
    pred = getattr(fn, "_small_pred", False)
    if pred is False:
        from .compiler import small_predicate
        pred = small_predicate(fn)
    return pred is not None and pred(*rt)


def _fast_key(v):
    """A cheap key from which the argument's type (and its checks) follow."""
    t = type(v)
    if t is Array:
        return (t, v.elem, v.data.ndim, v.device)
    if t is np.ndarray:
        return (t, v.dtype.num, v.shape[-2:] if v.ndim >= 2 else v.ndim)
    return t


def _is_ct(t):
    return not isinstance(t, (ir.ArrayInfo, T.Scalar, T.Vec, T.Mat))


def _drop_broken_cache(call, e) -> bool:
    """A corrupt numba cache entry (truncated pickle, ...): forget it so the retry recompiles."""
    import traceback
    if not any("numba/core/caching.py" in f.filename for f in traceback.extract_tb(e.__traceback__)):
        return False
    cache = getattr(call, "_cache", None)
    if cache is None:
        return False
    cache.flush()
    return True


def _needs_scratch(spec, args) -> bool:
    """Some float array without a gradient is written and read: its bar is a fresh scratch buffer."""
    for p, v, t in zip(spec.kernel.src.params, args, spec.types):
        if isinstance(t, ir.ArrayInfo) and t.dtype.is_float and not (type(v) is Array and v._grad is not None):
            if p in spec.reads and p in spec.writes:
                return True
    return False


def _reraise(e, fn, locmap, name):
    if type(e).__module__.startswith("numba"):
        from .compiler import map_numba_error
        raise map_numba_error(e, fn, locmap, name) from None
    raise e


def _converter(t, who):
    """How a launch argument of type ``t`` is passed to the generated function."""
    if _is_ct(t):
        return None
    if isinstance(t, ir.ArrayInfo):
        if t.logical_ndim == 0 and not isinstance(t.elem, (T.Vec, T.Mat)):
            return lambda v: (v.data if type(v) is Array else v).reshape(1)
        return lambda v: v.data if type(v) is Array else v
    if isinstance(t, T.Scalar):     # what to_runtime does for a scalar, without its dispatch
        return t.np if not t.weak or t.is_float else int
    return lambda v, t=t: to_runtime(v, t, who)


def _access_sets(fn):
    reads, writes = set(), set()
    for s in ir.walk_stmts(fn.body):
        if isinstance(s, ir.Store):
            writes.add(s.arr)
        if isinstance(s, ir.MatMul):
            reads.update((s.a, s.b))
            writes.add(s.out)
        for e in ir.stmt_exprs(s):
            for ld in ir.loads_in(e):
                reads.add(ld.arr)
    return reads, writes


class AdjointKernel:
    """``kernel.adjoint``: run with the kernel's own arguments; reads/accumulates ``.grad`` buffers."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._last = None
        self._plans: dict = {}
        self._prepared: dict = {}

    def plan(self, args):
        """(spec, adjoint IR, bar buffers) for a launch with ``args``."""
        k = self.kernel
        spec = k._spec(k._arg_types(args))
        active, bars = [], []
        arrays = [(p, v, t) for p, v, t in zip(k.src.params, args, spec.types) if isinstance(t, ir.ArrayInfo)]
        for p, v, t in arrays:
            if not t.dtype.is_float:
                continue
            g = v.grad if isinstance(v, Array) else None
            if g is not None:
                active.append(p)
                bars.append(to_runtime(g, t))
            elif p in spec.reads and p in spec.writes:
                # an intermediate written and read by this kernel: gradient flows through scratch
                active.append(p)
                d = v.data if isinstance(v, Array) else v
                bars.append(to_runtime(_scratch_like(v, d), t))
        if not active:          # nothing here carries a gradient (e.g. integer bookkeeping)
            return spec, None, []
        fn, _ = spec.adjoint_ir(tuple(active))
        for _, like in getattr(fn, "scratch", ()):      # e.g. winner counts of atomic min/max
            v = args[k.src.params.index(like)]
            bars.append(np.zeros(np.shape(v.data if isinstance(v, Array) else v), dtype=np.float64))
        self._last = (spec, fn)
        return spec, fn, bars

    def __call__(self, *args):
        k = self.kernel
        if k._custom_adjoint is not None:
            return k._custom_adjoint(*args)
        try:
            key = (tuple(map(_fast_key, args)), tuple(type(a) is Array and a._grad is not None for a in args))
            hit = self._plans.get(key)
            if hit is None or hit[1] is None:
                spec, fn, bars = self.plan(args)
                if fn is not None and not getattr(fn, "scratch", ()) and not _needs_scratch(spec, args):
                    self._plans[key] = (spec, fn)
            else:
                # the cached plan: only the gradient buffers of this launch are new
                spec, fn = hit
                bars = [to_runtime(args[i].grad, spec.types[i]) for i in self._active_index(spec, fn)]
            if fn is not None:
                spec.launch(args, fn, bars)
        except (errors.DifsciError, TypeError, ValueError) as e:
            raise errors.user_facing(e) from None

    def from_tape(self, args, spec):
        """The adjoint of a launch a Tape recorded with specialisation ``spec``.

        After the first such launch (the general path above: plan, checks, compile) a prepared call
        is kept per (spec, backend variant, which arguments carry .grad): argument conversion and the
        compiled adjoint only (mass-spring: ~9 -> ~5 µs per adjoint launch)."""
        k = self.kernel
        if k._custom_adjoint is not None:
            return k._custom_adjoint(*args)
        key = (spec, config.variant(), tuple(type(a) is Array and a._grad is not None for a in args))
        run = self._prepared.get(key)
        if run is None:
            self(*args)
            self._prepared[key] = self._prepare(spec, args)
        elif run is False:
            self(*args)
        else:
            run(args)

    def _prepare(self, spec, args):
        """A function running this launch's adjoint for arguments like ``args``; False when the general
        path is needed every time (scratch buffers, custom adjoints)."""
        hit = self._plans.get((tuple(map(_fast_key, args)), tuple(type(a) is Array and a._grad is not None
                                                                    for a in args)))
        if hit is None or hit[1] is None or hit[0] is not spec or config.backend == "cuda":
            return False
        spec, fn = hit
        variant = config.variant()
        convs = [(i, c) for i, c in enumerate(spec.convs) if c is not None]
        bars = [(i, spec.convs[i]) for i in fn.active_params]
        vec, name = spec.vector_args, self.kernel.src.name
        builds: dict = {}           # (id(adjoint IR), variant) -> (call, locmap), compiled when first used

        last = [(None, {})]          # the build called last (its line map, for errors)

        def call(use, rt):
            v = "cpu:small" if variant == "cpu" and _small(use, rt) else variant
            b = builds.get((id(use), v))
            if b is None:
                compiled, _, locmap = spec._adjoint_compiled(use, v)
                b = builds[(id(use), v)] = (compiled, locmap)
            last[0] = b
            b[0](*rt)

        def run(args):
            rt = [c(args[i]) for i, c in convs]
            if vec:
                rt = [c for r in rt for c in (r if isinstance(r, tuple) else (r,))]
            use, taken = fn, ()
            if any(args[i]._grad._pending for i, _ in bars):      # lazily zeroed gradients (array.py)
                use, taken = spec.fresh_adjoint(fn, [args[i]._grad for i, _ in bars])
            rt += [c(args[i]._grad) for i, c in bars]
            try:
                try:
                    call(use, rt)
                except Exception as e:  # noqa: BLE001
                    if use is fn or not type(e).__module__.startswith("numba"):
                        raise
                    # the variant did not compile: an optimisation must not break a backward
                    fn._takes_fresh = frozenset()
                    for g in taken:
                        g._materialize()
                    use, taken = fn, ()
                    call(fn, rt)
            except Exception as e:  # noqa: BLE001
                try:
                    _reraise(e, use, last[0][1], name)
                except (errors.DifsciError, TypeError, ValueError) as u:
                    raise errors.user_facing(u) from None
            for g in taken:          # the adjoint wrote them whole: no longer pending
                g._pending = False
        return run

    def _active_index(self, spec, fn):
        return fn.active_params

    @property
    def source(self) -> str:
        k = self.kernel
        if k._custom_adjoint is not None:
            src = getattr(k._custom_adjoint, "source", None)
            return src if src is not None else inspect.getsource(k._custom_adjoint)
        if self._last is None:
            spec = k._last or k._annotated_spec()
            active = tuple(p for p, t in zip(k.src.params, spec.types)
                           if isinstance(t, ir.ArrayInfo) and t.dtype.is_float)
            fn, _ = spec.adjoint_ir(active)
            self._last = (spec, fn)
        spec, fn = self._last
        return spec._adjoint_compiled(fn, config.variant())[1]


# ===================================================================== funcs
class FuncBase:
    """Something that specialises to a typed ``ir.Function``: a func or a transformation of one."""

    _difsci_func = True

    def specialize(self, types) -> ir.Function:
        """The typed IR of this func for argument ``types`` (each subclass defines it)."""
        raise TypeError(f"{type(self).__name__} does not define specialize()")

    def _py_types(self, args):
        out = []
        for k, v in enumerate(args):
            if isinstance(v, np.ndarray) and v.ndim in (1, 2) and v.dtype.kind in "fi":
                st = T.from_numpy(v.dtype) if v.dtype.kind == "f" else T.f64
                out.append(T.Vec(v.shape[0], st) if v.ndim == 1 else T.Mat(v.shape[0], v.shape[1], st))
            elif isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
                out.append(T.Vec(len(v), T.f64))
            else:
                out.append(value_type(v, None, f"func `{self.__name__}`, argument {k}"))
        return tuple(out)

    def __call__(self, *args):
        """Call from plain Python with numbers and numpy vectors/matrices."""
        try:
            return self._call(args)
        except (errors.DifsciError, TypeError, ValueError) as e:
            raise errors.user_facing(e) from None

    def _call(self, args):
        types = self._py_types(args)
        fn = self.specialize(types)
        call = self._compiled(fn)
        flat = []
        for v, t in zip(args, types):
            if isinstance(t, (T.Vec, T.Mat)):
                flat += [t.dtype.np(x) for x in np.asarray(v).ravel()]
            elif isinstance(t, T.Scalar):
                flat.append(to_runtime(v, t))
            else:
                raise TypeError(f"func `{self.__name__}` takes arrays only when called from a kernel")
        out = call(*flat)
        return _unpack(fn.result_type, iter(out if isinstance(out, tuple) else (out,)))

    def _compiled(self, fn):
        cache = self.__dict__.setdefault("_py_compiled", {})
        key = (id(fn), config.variant())
        if key not in cache:
            from .compiler import load
            backend = config.variant() if config.backend in ("cpu", "python") else "cpu"
            cache[key] = (load(fn, backend)[0], fn)
        return cache[key][0]

    @property
    def source(self) -> str:
        from .compiler import render
        fn = self._last_fn()
        return render(fn, "python")

    def _last_fn(self):
        last = self.__dict__.get("_last")
        if last is not None:
            return last
        raise errors.DifsciError(f"`{self.__name__}` has not been specialised yet: call it once, "
                                 "or annotate the parameters of the func it transforms")


def _unpack(rt, it):
    if isinstance(rt, T.Scalar):
        v = next(it)
        return v
    if isinstance(rt, (T.Vec, T.Mat)):
        vals = [next(it) for _ in range(rt.ncomp)]
        return np.array(vals, dtype=rt.dtype.np).reshape(rt.shape)
    if isinstance(rt, T.TupleType):
        return tuple(_unpack(t, it) for t in rt.items)
    return None


class Func(FuncBase):
    """``@ds.func``: inlined into kernels, callable from Python."""

    def __init__(self, pyfn):
        self.src = _Source(pyfn)
        self.__name__ = self.src.name
        self.__doc__ = pyfn.__doc__
        self._specs = {}
        self.vjp_rule = None
        self.jvp_rule = None

    def specialize(self, types) -> ir.Function:
        if len(types) != len(self.src.params):
            raise TypeError(f"func `{self.src.name}` takes {len(self.src.params)} argument(s), got {len(types)}")
        key = tuple(func_param_type(ann, t, f"func `{self.src.name}`, parameter `{p}`")
                    for p, ann, t in zip(self.src.params, self.src.annotations, types))
        fn = self._specs.get(key)
        if fn is None:
            fn = self._specs[key] = self.src.lower(key, False)
            fn.rules_of = self      # custom derivative rules (autodiff/custom.py) are looked up through it
        self._last = fn
        return fn

    def annotated_types(self):
        """Parameter types from annotations, or None when some are missing."""
        anns = self.src.annotations
        if any(a is None or isinstance(a, T.ArrayType) for a in anns):
            return None
        return tuple(anns)

    def _last_fn(self):
        if "_last" not in self.__dict__ and self.annotated_types() is not None:
            self.specialize(self.annotated_types())
        return super()._last_fn()

    def defvjp(self, rule):
        self.vjp_rule = rule if isinstance(rule, Func) else Func(rule)
        return rule

    def defjvp(self, rule):
        self.jvp_rule = rule if isinstance(rule, Func) else Func(rule)
        return rule

    def __repr__(self):
        return f"<difsci func {self.src.name}>"


def kernel(fn=None, **opts):
    """Decorator: a parallel kernel."""
    if fn is None:
        return lambda f: Kernel(f)
    return Kernel(fn)


def func(fn=None, **opts):
    """Decorator: a function callable from kernels (inlined) and from Python."""
    if fn is None:
        return lambda f: Func(f)
    return Func(fn)



# ---------------------------------------------- devices (the cuda backend: backends/devices.py)
def _check_device(who, v, args):
    """A ds.Array argument must live where the backend runs: ValueError naming kernel and parameter."""
    want = "cuda" if config.backend == "cuda" else "cpu"
    if v.device == want:
        return
    others = sorted({a.device for a in args if isinstance(a, Array)} - {v.device})
    mixed = f"; this launch mixes devices ({', '.join([v.device] + others)})" if others else ""
    raise ValueError(f"{who}: the array is on {v.device!r}, but the {config.backend!r} backend runs on "
                     f"{want!r}{mixed}; move it with .to({want!r}) or create it with device={want!r}")


def _scratch_like(v, d):
    """Zeros for a gradient that flows through scratch, on the argument's device."""
    if isinstance(v, Array) and v.device != "cpu":
        from .backends import devices
        return devices.zeros_like(d)
    return np.zeros_like(d)
