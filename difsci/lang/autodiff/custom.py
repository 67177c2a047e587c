"""Custom derivative rules (API.md §6): ``@f.defvjp`` and ``@f.defjvp``.

Funcs are inlined while lowering.  A func that has a rule is inlined between
two marker comments, so that the autodiff passes find the call again::

    # call of `f` (custom derivative rule)      begin marker: f, its parameter and result names
    f_x = a * 2.0                                 f's parameters
    ... f's body ...
    f_r0 = f_s * f_x                              f's results, in fresh names
    # end of `f`                                  end marker

Reverse mode replays the region as it is; going backwards it replaces the
adjoint of f's body by the inlined vjp rule::

    (f_x_bar, ...) += vjp_rule(f_x, ..., f_r0_bar)

and forward mode gives the results' tangents by the inlined jvp rule.  A rule
of one kind serves the other mode too: a vjp from jvps along the unit
vectors, a jvp from vjps of the unit vectors.  The markers print as comments,
so code that is not differentiated runs f's own body.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .. import build as B
from .. import ir
from .. import types as T
from ...errors import AutodiffError

_keys = itertools.count(1)


@dataclass
class RuleCall:
    """What a begin marker knows about the call it opens (names as inlined)."""

    owner: object              # the ds.func: .vjp_rule / .jvp_rule
    fn: ir.Function            # f's specialisation
    params: list = field(default_factory=list)    # per runtime group: (type, [names]) (None for an array)
    results: list = field(default_factory=list)   # (name, type) of each result component
    key: int = 0


def has_rule(fn: ir.Function) -> bool:
    owner = getattr(fn, "rules_of", None)
    return owner is not None and (getattr(owner, "vjp_rule", None) is not None
                                  or getattr(owner, "jvp_rule", None) is not None)


def begin_marker(fn: ir.Function, loc) -> ir.Comment:
    c = ir.Comment(f"call of `{fn.name}` (custom derivative rule)", loc=loc)
    c.custom = RuleCall(fn.rules_of, fn, key=next(_keys))
    return c


def end_marker(begin: ir.Comment) -> ir.Comment:
    c = ir.Comment(f"end of `{begin.custom.fn.name}`", loc=begin.loc)
    c.custom_end = begin.custom.key
    return c


def rename_marker(s: ir.Comment, vmap: dict):
    """A marker copied with its names renamed (for :mod:`..passes.rename`)."""
    c = ir.Comment(s.text, loc=s.loc)
    if getattr(s, "custom", None) is not None:
        info = s.custom
        V = lambda n: vmap.get(n, n)  # noqa: E731
        c.custom = RuleCall(info.owner, info.fn,
                            [None if g is None else (g[0], [V(n) for n in g[1]]) for g in info.params],
                            [(V(n), t) for n, t in info.results], info.key)
    if getattr(s, "custom_end", None) is not None:
        c.custom_end = s.custom_end
    return c


# ------------------------------------------------------------- regions
class CustomRegion:
    """A begin marker, the statements up to its end marker, and the end marker."""

    loc = None

    def __init__(self, begin, inner, end):
        self.begin, self.inner, self.end = begin, inner, end
        self.info = begin.custom

    def split(self):
        """(parameter assignments, body, result assignments)."""
        pnames = {n for g in self.info.params if g is not None for n in g[1]}
        rnames = {n for n, _ in self.info.results}
        inner = self.inner
        k = 0
        while k < len(inner) and isinstance(inner[k], ir.Assign) and inner[k].target in pnames:
            k += 1
        m = len(inner)
        while m > k and isinstance(inner[m - 1], ir.Assign) and inner[m - 1].target in rnames:
            m -= 1
        return inner[:k], inner[k:m], inner[m:]


def group_regions(stmts):
    """``stmts`` with each marked call folded into one :class:`CustomRegion`."""
    if not any(getattr(s, "custom", None) is not None for s in stmts):
        return stmts
    out, k = [], 0
    while k < len(stmts):
        s = stmts[k]
        info = getattr(s, "custom", None)
        if info is not None and has_rule(info.fn):
            for j in range(k + 1, len(stmts)):
                if getattr(stmts[j], "custom_end", None) == info.key:
                    out.append(CustomRegion(s, stmts[k + 1:j], stmts[j]))
                    k = j + 1
                    break
            else:
                out.append(s)
                k += 1
            continue
        out.append(s)
        k += 1
    return out


# ------------------------------------------------------- inlining rules
class _Sink:
    """Collects the statements of an inlined rule (the ``lw`` that inline_function expects)."""

    def __init__(self, locals_: dict, used: set, fresh):
        self.body: list = []
        self.locals_out = locals_
        self.used = used
        self.fresh = fresh
        self.inline_counts: dict = {}

    def emit(self, s):
        self.body.append(s)

    def temp(self, expr):
        if isinstance(expr, (ir.Const, ir.Var)):
            return expr
        name = self.fresh("_r")
        self.locals_out[name] = expr.ty
        self.emit(ir.Assign(name, expr, expr.ty))
        return ir.Var(expr.ty, name)

    def inline(self, fn, args):
        from ..passes.inline import inline_function
        k = self.inline_counts.get(fn.name, 0)
        while any(u.startswith(f"{fn.name}{k + 1 if k else ''}_") for u in self.used):
            k += 1
        self.inline_counts[fn.name] = k
        before = set(self.locals_out)
        out = inline_function(self, fn, args, None)
        self.used |= set(self.locals_out) - before
        return out


def _pack(ty, comps):
    from ..frontend.values import VV
    if isinstance(ty, (T.Vec, T.Mat)):
        return VV(list(comps), ty)
    return comps[0]


def _flat(v) -> list:
    from ..frontend.values import VV, Tup
    if isinstance(v, VV):
        return list(v.comps)
    if isinstance(v, Tup):
        return [c for i in v.items for c in _flat(i)]
    return [v]


def _result_types(fn):
    rt = fn.result_type
    return list(rt.items) if isinstance(rt, T.TupleType) else [rt]


def _check_params(info, loc, kernel):
    if any(g is None for g in info.params):
        raise AutodiffError(f"`{info.fn.name}` has a custom derivative rule but takes an array",
                            loc, "give funcs with custom rules numbers and vectors only", kernel)


def _err(info, what, loc, kernel):
    return AutodiffError(f"the custom {what} rule of `{info.fn.name}` returns the wrong shape", loc,
                         f"a {what} rule returns " + ("the adjoints of the func's arguments (a tuple when there "
                                                    "are several)" if what == "vjp" else
                                                    "the tangent of the func's result"), kernel)


def vjp(sink, info, params, seeds, loc, kernel):
    """Adjoints (a list of component lists, one per parameter group) of the call, given result adjoints."""
    _check_params(info, loc, kernel)
    owner = info.owner
    ptypes = [g[0] for g in info.params]
    rtypes = _result_types(info.fn)
    seed_vals, it = [], iter(seeds)
    for t in rtypes:
        seed_vals.append(_pack(t, [next(it) for _ in range(t.ncomp)]))
    if owner.vjp_rule is not None:
        rule = owner.vjp_rule.specialize(tuple(ptypes) + tuple(rtypes))
        out = sink.inline(rule, list(params) + seed_vals)
        from ..frontend.values import Tup
        items = out.items if (isinstance(out, Tup) and len(ptypes) > 1) else [out]
        if len(items) != len(ptypes):
            raise _err(info, "vjp", loc, kernel)
        adj = [_flat(v) for v in items]
        if any(len(a) != t.ncomp for a, t in zip(adj, ptypes)):
            raise _err(info, "vjp", loc, kernel)
        return adj
    # only a jvp rule: one jvp per input component, <seed, J e_k>
    adj = []
    for gi, t in enumerate(ptypes):
        comps = []
        for k in range(t.ncomp):
            tangents = [_unit(pt, k if gj == gi else None) for gj, pt in enumerate(ptypes)]
            tan = jvp_tangents(sink, info, params, tangents, loc, kernel, use_vjp=False)
            acc = B.zero(T.f64)
            for s, d in zip(seeds, tan):
                acc = B.add(acc, B.mul(s, d))
            comps.append(acc)
        adj.append(comps)
    return adj


def _unit(ty, k):
    """The tangent e_k of a parameter of type ``ty`` (all zeros when ``k`` is None)."""
    tt = ty if ty.scalar.is_float else _float_twin(ty)
    return _pack(tt, [B.Const(tt.scalar, 1.0 if j == k else 0.0) for j in range(ty.ncomp)])


def jvp_tangents(sink, info, params, tangents, loc, kernel, use_vjp=True):
    """The result tangent components of the call, given parameter tangents (packed values)."""
    _check_params(info, loc, kernel)
    owner = info.owner
    ptypes = [g[0] for g in info.params]
    rtypes = _result_types(info.fn)
    n_out = sum(t.ncomp for t in rtypes)
    if owner.jvp_rule is not None:
        ttypes = [t if t.scalar.is_float else _float_twin(t) for t in ptypes]
        rule = owner.jvp_rule.specialize(tuple(ptypes) + tuple(ttypes))
        out = _flat(sink.inline(rule, list(params) + list(tangents)))
        if len(out) != n_out:
            raise _err(info, "jvp", loc, kernel)
        return out
    if not use_vjp:
        raise AutodiffError(f"`{info.fn.name}` has no jvp rule", loc, None, kernel)
    # only a vjp rule: one vjp per output component, <J^T e_j, tangent>
    flat_t = [c for v in tangents for c in _flat(v)]
    out = []
    for j in range(n_out):
        seeds = [B.Const(T.f64, 1.0 if i == j else 0.0) for i in range(n_out)]
        adj = vjp(sink, info, params, seeds, loc, kernel)
        acc = B.zero(T.f64)
        for a, d in zip([c for g in adj for c in g], flat_t):
            acc = B.add(acc, B.mul(a, d))
        out.append(acc)
    return out


def _float_twin(t):
    if isinstance(t, T.Scalar):
        return T.f64
    if isinstance(t, T.Vec):
        return T.Vec(t.n, T.f64)
    return T.Mat(t.n, t.m, T.f64)


def param_values(info, locals_):
    return [_pack(ty, [ir.Var(locals_[n], n) for n in names]) for ty, names in info.params]


def _no_stores(region, kernel):
    for s in ir.walk_stmts(region.inner):
        if isinstance(s, ir.Store) and s.value.ty.is_float:
            raise AutodiffError(f"`{region.info.fn.name}` has a custom derivative rule but writes an array",
                                s.loc, "a func with a custom rule must return its results", kernel)


# ------------------------------------------------------ the two modes
def rev_region(ctx, region, rev_block, save):
    """(forward replay, adjoint) of a marked call: the adjoint comes from the rule."""
    info = region.info
    kernel = ctx.fn.name
    _no_stores(region, kernel)
    P, body, R = region.split()
    fp, bp = rev_block(ctx, P)
    # The marked region keeps exactly the call (body, then result assignments) so that a transformation
    # of this output finds it again: parameter replays and saves go before it. (The results have fresh
    # names that the body does not assign, so saving them before the body saves the same values.)
    fwd = list(fp)
    restores = []
    for a in R:
        r = []
        save(ctx, a.target, fwd, r)
        restores.append(r)
    fwd += [region.begin] + list(body) + list(R) + [region.end]
    bwd = []
    assigned = {a.target for a in R}
    seeds = []
    for name, ty in info.results:
        if name in assigned and ctx.has_bar(name):
            t = ctx.tmp(ctx.locals[name])
            bar = ctx.bar(name)
            bwd += [ir.Assign(t, ir.Var(ctx.locals[name], bar), ctx.locals[name]),
                    ir.Assign(bar, B.zero(ctx.locals[name]), ctx.locals[name])]
            seeds.append(ir.Var(ctx.locals[name], t))
        else:
            seeds.append(B.zero(ty if ty.is_float else T.f64))
    for r in reversed(restores):
        bwd += r
    if not any(not isinstance(s, ir.Const) for s in seeds):
        return fwd, bwd + bp
    sink = _Sink(ctx.locals, ctx.used, lambda base: ctx.fresh(base))
    adj = vjp(sink, info, param_values(info, ctx.locals), seeds, region.begin.loc, kernel)
    bwd += sink.body
    for (ty, names), comps in zip(info.params, adj):
        for n, c in zip(names, comps):
            if ctx.has_bar(n):
                t = ctx.locals[n]
                bwd.append(ir.Assign(ctx.bar(n), B.add(ir.Var(t, ctx.bar(n)), B.cast(c, t)), t))
    return fwd, bwd + bp


def fwd_region(ctx, region, fwd_block):
    """Forward mode of a marked call: the results' tangents come from the rule."""
    info = region.info
    kernel = ctx.fn.name
    _no_stores(region, kernel)
    P, body, R = region.split()
    # the region keeps exactly the call; the parameters' tangents go before it and the rule's
    # statements after it, as ordinary code that a further transformation differentiates
    out = fwd_block(ctx, P) + [region.begin] + list(body) + list(R) + [region.end]
    tangents = []
    for ty, names in info.params:
        comps = [ir.Var(ctx.locals[n], ctx.dot(n)) if ctx.has_dot(n) else B.zero(T.f64) for n in names]
        tangents.append(_pack(ty if ty.scalar.is_float else _float_twin(ty), comps))

    def fresh(base):
        name, k = base, 2
        while name in ctx.used:
            name = f"{base}{k}"
            k += 1
        ctx.used.add(name)
        return name
    sink = _Sink(ctx.locals, ctx.used, fresh)
    tans = jvp_tangents(sink, info, param_values(info, ctx.locals), tangents, region.begin.loc, kernel)
    out += sink.body
    assigned = {a.target for a in R}
    for (name, ty), t in zip(info.results, tans):
        if name in assigned and ctx.has_dot(name):
            lt = ctx.locals[name]
            out.append(ir.Assign(ctx.dot(name), B.cast(t, lt), lt))
    return out


# ------------------------------------------------------------ transforms
def wrap_call(F: ir.Function) -> ir.Function:
    """``F`` itself as a marked call inside a func with F's parameters (so ds.grad(f) uses f's rule)."""
    if not has_rule(F):
        return F
    from ..passes.inline import FunctionBuilder
    fb = FunctionBuilder(F, "call")
    fb.name = F.name
    out = fb.inline(F, [fb.param_value(g) for g in F.groups])
    return fb.finish(fb.flat(out), F.result_type, F.header)
