"""Statement lowering: assignments, stores, if/for/while, loop forms.

Top-level ``for`` loops of a kernel (and those directly inside a top-level
``ds.serial`` loop) become :class:`ir.ParFor`; every other loop is serial.
``ds.static`` loops are unrolled here.  A ``return`` in the middle of a func
sets ``_returned`` and the rest of each enclosing block is guarded by it.
"""
from __future__ import annotations

import ast

from .. import build as B
from .. import intrinsics as I
from .. import ir
from .. import types as T
from .values import CT, VV, Arr, Tup

AUG_STORE = {ast.Add: "add", ast.Sub: "add"}


def _contains(node, kinds):
    return any(isinstance(n, kinds) for n in ast.walk(node))


class StmtLowering:
    def lower_block(self, stmts):
        for k, s in enumerate(stmts):
            self.cur_loc = self.loc(s)
            self.lower_stmt(s)
            if not self.is_kernel and getattr(self.ret, "early", False) and _contains(s, ast.Return):
                rest = stmts[k + 1:]
                if self.loop_depth and not isinstance(s, ast.Return) and isinstance(s, (ast.For, ast.While)):
                    self.emit(ir.If(ir.Var(T.boolean, "_returned"), [ir.Break(loc=self.cur_loc)], [], loc=self.cur_loc))
                if rest and not isinstance(s, ast.Return):
                    body = self.sub_block(rest)
                    self.emit(ir.If(B.lnot(ir.Var(T.boolean, "_returned")), body, [], loc=self.loc(rest[0])))
                return

    def lower_stmt(self, node):
        meth = getattr(self, "st_" + type(node).__name__, None)
        if meth is None:
            raise self.err(node, f"`{type(node).__name__}` statements are not supported in a kernel",
                           hint="kernels support assignment, if/elif/else, for, while, break, continue, pass and return (in funcs)")
        meth(node)

    def st_Pass(self, node):
        pass

    def st_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # docstring
        if isinstance(node.value, ast.Call):
            self.lower_expr(node.value)
            return
        raise self.err(node, "this expression's value is never used", hint="assign it or remove it")

    def st_Return(self, node):
        self.lower_return(node)

    def st_Break(self, node):
        if not self.loop_depth:
            raise self.err(node, "`break` outside a serial loop",
                           hint="a parallel loop cannot be left early; use `if` to skip work")
        self.emit(ir.Break(loc=self.loc(node)))

    def st_Continue(self, node):
        if not self.loop_depth and self.level != "par":
            raise self.err(node, "`continue` outside a loop")
        if not self.loop_depth:
            raise self.err(node, "`continue` directly in a parallel loop is not supported",
                           hint="wrap the rest of the iteration in `if not cond:`")
        self.emit(ir.Continue(loc=self.loc(node)))

    # ------------------------------------------------------ assignments
    def st_Assign(self, node):
        value = self.lower_expr(node.value)
        for tgt in node.targets:
            self.assign(tgt, value, node)

    def st_AnnAssign(self, node):
        if node.value is None:
            raise self.err(node, "a declaration needs a value: write `x: float = 0.0`")
        value = self.lower_expr(node.value)
        ann = self._compile_time(node.annotation) if not isinstance(node.annotation, ast.Constant) else None
        if isinstance(ann, T.Scalar) or ann in (float, int, bool):
            value = self.call_cast(ann, [value], node)
        self.assign(node.target, value, node)

    def assign(self, tgt, value, node):
        if isinstance(tgt, ast.Name):
            if tgt.id in ("ds", "math") or tgt.id.startswith("_"):
                if tgt.id in ("ds", "math"):
                    raise self.err(tgt, f"`{tgt.id}` cannot be reassigned in a kernel")
            self.declare(tgt.id, value, tgt)
        elif isinstance(tgt, (ast.Tuple, ast.List)):
            items = self._unpack(value, len(tgt.elts), tgt)
            # evaluate every item before assigning any (`a, b = b, a`)
            targets = {n.id for n in ast.walk(tgt) if isinstance(n, ast.Name)}
            items = [self._snapshot(i, targets) for i in items]
            for t, v in zip(tgt.elts, items):
                self.assign(t, v, node)
        elif (ec := self.element_component(tgt)) is not None:
            self.cur_loc = self.loc(tgt)
            self.store_component(*ec, self.as_scalar(value, node), "set")
        elif isinstance(tgt, ast.Subscript):
            base = self.lower_expr(tgt.value)
            if isinstance(base, Arr):
                self.cur_loc = self.loc(tgt)
                self.store(base, self.array_index(base, tgt), value, tgt, "set")
            elif isinstance(base, VV) and isinstance(tgt.value, ast.Name):
                self.set_component(tgt.value.id, base, tgt, value)
            else:
                self.expect_array(tgt.value, base)
                raise self.err(tgt, "only array elements and vector components can be assigned")
        elif isinstance(tgt, ast.Attribute):
            base = self.lower_expr(tgt.value)
            from .exprs import COMPONENTS
            if isinstance(base, VV) and isinstance(tgt.value, ast.Name) and tgt.attr in COMPONENTS and not base.is_mat:
                k = COMPONENTS[tgt.attr]
                comps = list(base.comps)
                comps[k] = self.as_scalar(value, node)
                self.declare(tgt.value.id, VV(comps, base.dtype), tgt)
            else:
                raise self.err(tgt, "only vector components (.x .y .z .w) can be assigned as attributes")
        else:
            raise self.err(tgt, "cannot assign to this")

    def element_component(self, tgt):
        """``p[i].x``, ``p[i][k]``, ``M[i][r, c]``: (array, storage index) of one component of an
        element of an array of vectors/matrices; None for any other target."""
        inner = tgt.value if isinstance(tgt, (ast.Attribute, ast.Subscript)) else None
        if not (isinstance(inner, ast.Subscript) and isinstance(inner.value, ast.Name)):
            return None
        arr = self.lower_expr(inner.value)
        if not (isinstance(arr, Arr) and isinstance(arr.info.elem, (T.Vec, T.Mat))):
            return None
        elem = arr.info.elem
        idx = self.array_index(arr, inner)
        if isinstance(tgt, ast.Attribute):
            from .exprs import COMPONENTS
            k = COMPONENTS.get(tgt.attr)
            if isinstance(elem, T.Mat) or k is None or k >= elem.n:
                raise self.err(tgt, f"`.{tgt.attr}` is not a component of a {elem}")
            return arr, idx + [B.const(k)]
        vals, nodes = self.index_values(tgt)
        if len(vals) != len(elem.shape):
            raise self.err(tgt, f"a component of a {elem} takes {len(elem.shape)} index(es)")
        comp = [self.int_index(v, n) for v, n in zip(vals, nodes)]
        for c, size in zip(comp, elem.shape):
            if isinstance(c, ir.Const) and not 0 <= c.value < size:
                raise self.err(tgt, f"component index {c.value} out of range for a {elem}")
        return arr, idx + comp

    def store_component(self, arr: Arr, idx, value, mode):
        """Store (``set``) or accumulate (``add``) the scalar ``value`` into one component."""
        self.emit(ir.Store(arr.name, tuple(idx), B.cast(value, arr.info.dtype), mode, loc=self.cur_loc))

    def _snapshot(self, v, targets):
        """``v`` held where assigning the names ``targets`` cannot change it."""
        if isinstance(v, VV):
            return VV([self._snapshot(c, targets) for c in v.comps], v.dtype)
        if isinstance(v, Tup):
            return Tup([self._snapshot(i, targets) for i in v.items])
        if isinstance(v, ir.Var) and any(v.name == n or v.name.startswith(n + "_") for n in targets):
            return self.temp(v, force=True)
        return self.temp(v) if isinstance(v, ir.Expr) else v

    def _unpack(self, value, n, tgt):
        if isinstance(value, Tup):
            items = value.items
        elif isinstance(value, VV) and not value.is_mat:
            items = value.comps
        else:
            raise self.err(tgt, "only tuples and vectors can be unpacked")
        if len(items) != n:
            raise self.err(tgt, f"cannot unpack {len(items)} values into {n} names")
        return items

    def set_component(self, name, base: VV, tgt, value):
        idx, nodes = self.index_values(tgt)
        idx = [self.int_index(i, n) for i, n in zip(idx, nodes)]
        value = self.as_scalar(value, tgt)
        if base.is_mat:
            if len(idx) != 2:
                raise self.err(tgt, "assign a matrix entry as M[r, c] = ...")
            m = base.dtype.m
            conds = [(r * m + c, B.logical("and", B.compare("eq", idx[0], B.const(r)), B.compare("eq", idx[1], B.const(c))))
                     for r in range(base.dtype.n) for c in range(m)]
        else:
            conds = [(k, B.compare("eq", idx[0], B.const(k))) for k in range(base.dtype.n)]
        if all(isinstance(i, ir.Const) for i in idx):
            flat = idx[0].value * (base.dtype.m if base.is_mat else 1) + (idx[1].value if base.is_mat else 0)
            comps = list(base.comps)
            comps[flat] = value
        else:
            v = self.temp(value)
            comps = [B.select(c, v, base.comps[k]) for k, c in conds]
        self.declare(name, VV(comps, base.dtype), tgt)

    def store(self, arr: Arr, idx, value, node, mode):
        info = arr.info
        if not isinstance(value, (ir.Expr, VV)):
            value = self.as_scalar(value, node)
        if isinstance(info.elem, (T.Vec, T.Mat)):
            if not isinstance(value, VV) or value.dtype.shape != info.elem.shape:
                raise self.err(node, f"`{arr.name}` holds {info.elem} values")
            from .exprs import _component_indices
            for sub, c in zip(_component_indices(info.elem), value.comps):
                self.emit(ir.Store(arr.name, tuple(idx) + tuple(B.const(k) for k in sub), B.cast(c, info.dtype), mode,
                                   loc=self.cur_loc))
            return
        if isinstance(value, VV):
            raise self.err(node, f"cannot store a {value.dtype} into `{arr.name}`, an array of {info.dtype}")
        if mode != "set" and info.dtype.is_bool:
            raise self.err(node, "atomics work on numeric arrays")
        self.emit(ir.Store(arr.name, tuple(idx), B.cast(value, info.dtype), mode, loc=self.cur_loc))

    def st_AugAssign(self, node):
        tgt = node.target
        opcls = type(node.op)
        ec = self.element_component(tgt)
        if ec is not None:
            arr, idx = ec
            rhs = self.scalar(node.value)
            self.cur_loc = self.loc(tgt)
            if opcls in AUG_STORE:
                self.store_component(arr, idx, B.neg(rhs) if opcls is ast.Sub else rhs, "add")
            else:
                cur = ir.Load(arr.info.dtype, arr.name, tuple(idx))
                self.store_component(arr, idx, self.as_scalar(self.binary(node, opcls, cur, rhs), node), "set")
            return
        if isinstance(tgt, ast.Subscript):
            base = self.lower_expr(tgt.value)
            if isinstance(base, Arr):
                idx = self.array_index(base, tgt)
                rhs = self.lower_expr(node.value)
                self.cur_loc = self.loc(tgt)
                if opcls in AUG_STORE:
                    if opcls is ast.Sub:
                        rhs = self.binary(node, ast.Mult, rhs, B.const(-1)) if isinstance(rhs, VV) else B.neg(self.as_scalar(rhs, node))
                    self.store(base, idx, rhs, tgt, "add")
                    return
                cur = self.load(base, tgt)
                self.store(base, idx, self.binary(node, opcls, cur, rhs), tgt, "set")
                return
        cur = self.lower_expr(tgt)
        rhs = self.lower_expr(node.value)
        self.assign(tgt, self.binary(node, opcls, cur, rhs), node)

    # --------------------------------------------------------- control
    def st_If(self, node):
        cond = self.lower_expr(node.test)
        if isinstance(cond, CT) or isinstance(cond, ir.Const):
            val = cond.obj if isinstance(cond, CT) else cond.value
            self.lower_block(node.body if val else node.orelse)
            return
        cond = self.truth(cond, node.test)
        loc = self.loc(node)
        # loops nested in an `if` are serial, even at the top of a kernel (API.md §3)
        saved = self.level
        self.level = "inner" if saved in ("top", "time") else saved
        body = self.sub_block(node.body)
        orelse = self.sub_block(node.orelse)
        self.level = saved
        self.emit(ir.If(cond, body, orelse, loc=loc))

    def st_While(self, node):
        if node.orelse:
            raise self.err(node, "`while ... else` is not supported")
        loc = self.loc(node)
        saved = self.level
        self.level = "inner"
        self.blocks.append([])
        cond = self.truth(self.lower_expr(node.test), node.test)
        pre = self.blocks.pop()
        if pre:
            raise self.err(node.test, "this loop condition is too complex", hint="compute it into a variable first")
        self.loop_depth += 1
        body = self.sub_block(node.body)
        self.loop_depth -= 1
        self.level = saved
        self.emit(ir.While(cond, body, loc=loc))

    def st_For(self, node):
        if node.orelse:
            raise self.err(node, "`for ... else` is not supported")
        it = node.iter
        form, args = self._loop_form(it)
        if form == "static":
            return self._static_for(node, args)
        if form == "serial":
            return self._time_loop(node, args)
        bounds = self._bounds(form, args, it)
        names = self._loop_targets(node.target, len(bounds))
        loc = self.loc(node)
        if self.level in ("top", "time"):
            saved, saved_env = self.level, dict(self.env)
            self.par_outer = {k for k, b in self.env.items() if b[0] in ("s", "v")} - set(names)
            for n in names:        # bound inside the loop only: they do not exist after it
                self._bind_index(n)
            self.level = "par"
            body = self.sub_block(node.body)
            self.par_only |= {k for k in self.env if k not in saved_env}
            self.level, self.env, self.par_outer = saved, saved_env, None
            self.emit(ir.ParFor(tuple(names), tuple(bounds), body, loc=loc))
            return
        self._serial_nest(node, names, bounds, loc)

    def _serial_nest(self, node, names, bounds, loc):
        for n in names:
            self._bind_index(n)
        saved = self.level
        self.level = "inner"
        self.loop_depth += 1
        body = self.sub_block(node.body)
        self.loop_depth -= 1
        self.level = saved
        for n, (lo, hi) in reversed(list(zip(names, bounds))):
            body = [ir.For(n, lo, hi, body, loc=loc)]
        if len(names) > 1 and _has_jump(body[0].body if len(names) == 1 else body):
            raise self.err(node, "`break`/`continue` in a multi-dimensional ndrange loop is not supported")
        self.blocks[-1].extend(body)

    def _bind_index(self, n):
        """A loop index: an integer (unified with other assignments to the same name)."""
        old = self.var_types.get(n)
        ty = T.unify(old, T.WEAK_INT) if isinstance(old, T.Scalar) and not old.is_float else T.WEAK_INT
        if old is not None and ty != old:
            self.dirty = True
        self.env[n] = ("s", n, ty)
        self.var_types[n] = ty
        self.locals_out[n] = ty

    def _loop_targets(self, tgt, n):
        if isinstance(tgt, ast.Name):
            names = [tgt.id]
        elif isinstance(tgt, ast.Tuple) and all(isinstance(e, ast.Name) for e in tgt.elts):
            names = [e.id for e in tgt.elts]
        else:
            raise self.err(tgt, "a loop variable must be a name (or names for ds.ndrange)")
        if len(names) != n:
            raise self.err(tgt, f"this loop has {n} index(es) but {len(names)} name(s)")
        return names

    def _loop_form(self, it):
        if isinstance(it, ast.Call):
            f = self.lower_expr(it.func)
            if isinstance(f, CT):
                if f.obj is range:
                    return "range", it.args
                if f.obj is I.ndrange:
                    return "ndrange", it.args
                if f.obj is I.static:
                    return "static", it.args
                if f.obj is I.serial:
                    return "serial", it.args
        raise self.err(it, "a kernel loops over range(...), ds.ndrange(...), ds.static(...) or ds.serial(range(...))")

    def _int(self, node):
        v = self.lower_expr(node)
        return self.int_index(v, node)

    def _bounds(self, form, args, it):
        if form == "range":
            if not 1 <= len(args) <= 3:
                raise self.err(it, "range takes 1 to 3 arguments")
            vals = [self._int(a) for a in args]
            if len(vals) == 3:
                if not isinstance(vals[2], ir.Const) or vals[2].value != 1:
                    return [self._stepped(vals, it)]
                vals = vals[:2]
            return [(B.const(0), vals[0])] if len(vals) == 1 else [tuple(vals)]
        out = []
        for a in args:
            if isinstance(a, ast.Tuple):
                if len(a.elts) != 2:
                    raise self.err(a, "each ds.ndrange range is n or (start, stop)")
                out.append((self._int(a.elts[0]), self._int(a.elts[1])))
            else:
                out.append((B.const(0), self._int(a)))
        return out

    def _stepped(self, vals, it):
        raise self.err(it, "range with a step other than 1 is not supported yet",
                       hint="loop over range(count) and compute the index: i = start + k * step")

    def _static_for(self, node, args):
        if len(args) != 1:
            raise self.err(node.iter, "ds.static takes one iterable known at compile time")
        inner = args[0]
        if isinstance(inner, ast.Call) and isinstance(self.lower_expr(inner.func), CT) and self.lower_expr(inner.func).obj is range:
            vals = [self._compile_time(a) for a in inner.args]
            items = list(range(*vals))
        else:
            items = self._compile_time(inner)
            if not isinstance(items, (tuple, list, range)):
                raise self.err(inner, "ds.static(...) takes a range or tuple known at compile time")
        if not isinstance(node.target, ast.Name):
            raise self.err(node.target, "a ds.static loop variable must be one name")
        name = node.target.id
        for v in items:
            self.env[name] = ("ct", CT(v) if not isinstance(v, (int, float)) else None)
            if isinstance(v, (int, float, bool)):
                from .exprs import python_value
                self.env[name] = ("ct", python_value(v, None))
            self.local_names.discard(name) if False else None
            if _has_jump_ast(node.body):
                raise self.err(node, "`break`/`continue` in a ds.static loop is not supported")
            self.lower_block(node.body)

    def _time_loop(self, node, args):
        if self.level != "top":
            raise self.err(node, "a ds.serial loop must stand directly in the kernel body")
        if len(args) != 1 or not (isinstance(args[0], ast.Call)):
            raise self.err(node.iter, "write ds.serial(range(...))")
        form, rargs = self._loop_form(args[0])
        if form != "range":
            raise self.err(node.iter, "write ds.serial(range(...))")
        (lo, hi), = self._bounds("range", rargs, args[0])
        name, = self._loop_targets(node.target, 1)
        self._bind_index(name)
        self.level = "time"
        body = self.sub_block(node.body)
        self.level = "top"
        self.emit(ir.TimeLoop(name, lo, hi, body, loc=self.loc(node)))


def _has_jump(stmts):
    return any(isinstance(s, (ir.Break, ir.Continue)) for s in ir.walk_stmts(stmts))


def _has_jump_ast(body):
    for s in body:
        for n in ast.walk(s):
            if isinstance(n, (ast.Break, ast.Continue)):
                return True
    return False
