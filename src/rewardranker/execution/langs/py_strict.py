"""The strict verdict rule's harness for Python: the tests are rewritten (with `ast`) before they run.

What the rewrite does (names carry the per-program nonce, so a completion written before the nonce existed
cannot name them):
- a one-line prologue at the top of the file (omitted when the prompt has a `from __future__` import, which
  must stay first) copies the builtins before the program runs; the tests then use that copy for every
  builtin name they use (`abs`, `str`, `range`...), so a program that rebinds `abs` globally or patches
  `builtins.abs` does not change what the tests compute;
- every `assert` in the tests becomes a harness call on the same line that checks the condition and records
  that this assertion ran; inside an assertion, every value that comes from a call, name, attribute or
  subscript is first turned into plain builtin values ("type-aware strict equality"): exact builtin scalars
  and containers are rebuilt element by element; subclasses of builtin types (an `int` whose `__eq__` always
  returns True, `Counter`, `namedtuple`) are converted to their builtin base through that base's own C
  methods; an object whose class the program defined, or whose comparison, truthiness or arithmetic methods
  are written in Python (a patched `fractions.Fraction.__eq__`, a class with a spoofed `__module__`), reaching
  an assertion is reported as `Tampered`; other objects (generators, C-implemented stdlib types) pass
  unchanged;
- the epilogue (after the tests) writes the OK message to fd 3 only if no assertion failed, every assertion
  that runs unconditionally in a test function the tests call actually ran (so a tracer that jumps over
  assertions, or tests that never called `check`, fail), at least one assertion ran when all of them are
  conditional (a program that sets `__name__` cannot skip an `if __name__ == "__main__":` block), and no trace
  function is installed (reported as `Tampered`, as is a trace function seen at any assertion).
"""

from __future__ import annotations

import ast
import builtins
import functools

from rewardranker.execution.langs.base import ok_message

_BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("__"))
_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.Match)

_HARNESS = '''
def __rr_make_{n}(_g):
    _imp = _g["__import__"]
    _os, _sys = _imp("os"), _imp("sys")
    _type, _issubclass, _isinstance = _g["type"], _g["issubclass"], _g["isinstance"]
    _AssertionError = _g["AssertionError"]
    _list, _tuple, _dict, _set, _frozenset = _g["list"], _g["tuple"], _g["dict"], _g["set"], _g["frozenset"]
    _int, _float, _complex, _str, _bytes = _g["int"], _g["float"], _g["complex"], _g["str"], _g["bytes"]
    _scalars = (_int, _float, _complex, _str, _bytes, _g["bool"], _type(None))
    _convert = ((_int, _int.__index__), (_float, _float.__float__), (_str, _str.__str__),
                (_bytes, _bytes.__bytes__), (_complex, _complex.__complex__))
    _module_of = _type.__dict__["__module__"].__get__
    _mro_of, _dict_of = _type.__dict__["__mro__"].__get__, _type.__dict__["__dict__"].__get__
    _native = (_type(_int.__eq__), _type(_int.__int__), _type(len), _type(None), _type((0).__eq__),
               _type(_dict.__dict__["fromkeys"]))
    _dunders = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__abs__",
                "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                "__rtruediv__", "__neg__", "__float__", "__int__", "__index__", "__round__", "__contains__")

    def _python_dunder(t):
        """The first comparison, truthiness or arithmetic method of `t` written in Python, if any."""
        for c in _mro_of(t):
            d = _dict_of(c)
            for name in _dunders:
                if name in d and not _isinstance(d[name], _native):
                    return name
        return None
    _state = {{"fail": False, "seen": _set(), "tamper": ""}}

    def _say(msg):
        try:
            _os.write(3, msg.encode())
        except BaseException:
            pass

    def _tamper(what):
        if not _state["tamper"]:
            _state["tamper"] = what
            _say({tamper!r} + what + "\\n")

    def plain(v, _depth=0):
        t = _type(v)
        if t in _scalars or _depth > 200:
            return v
        if t is _list or t is _tuple:
            return t(plain(x, _depth + 1) for x in v)
        if t is _dict:
            return {{plain(k, _depth + 1): plain(x, _depth + 1) for k, x in _dict.items(v)}}
        if t is _set or t is _frozenset:
            return t(plain(x, _depth + 1) for x in v)
        for base, conv in _convert:
            if _issubclass(t, base):
                return conv(v)
        for base in (_list, _tuple, _set, _frozenset):
            if _issubclass(t, base):
                return base(plain(x, _depth + 1) for x in base.__iter__(v))
        if _issubclass(t, _dict):
            return {{plain(k, _depth + 1): plain(x, _depth + 1) for k, x in _dict.items(v)}}
        dunder = _python_dunder(t)
        if _module_of(t) == "__main__" or dunder:
            _tamper("an object of class " + _type.__dict__["__name__"].__get__(t) + " ("
                    + (dunder + " written in Python" if dunder else "defined by the program")
                    + ") reached a test assertion")
            _state["fail"] = True
            raise _AssertionError("rewardranker strict: program-defined object in an assertion")
        return v

    def check(ok, idx):
        if _sys.gettrace() is not None:
            _tamper("a trace function was active during the tests")
        if not plain(ok):
            _state["fail"] = True
            raise _AssertionError
        _state["seen"].add(idx)

    def end(required, some):
        if _sys.gettrace() is not None:
            _tamper("a trace function was active after the tests")
        if _state["fail"] or _state["tamper"] or not required <= _state["seen"] or (some and not _state["seen"]):
            return
        _say({ok!r})

    return plain, check, end


__rr_P_{n}, __rr_A_{n}, __rr_E_{n} = __rr_make_{n}({g})
del __rr_make_{n}
'''


def strict_program(head: str, tests: str, nonce: str) -> str | None:
    """head + harness + rewritten tests + epilogue, or None when the tests do not parse on their own."""
    top = "__future__" not in head
    template = _template(tests, top)
    if template is None:
        return None
    prologue = f"__rr_g_{nonce} = dict(vars(__import__('builtins')))\n" if top else ""
    harness, body = template
    return prologue + head + "\n" + harness.replace(_SLOT, nonce) + "\n" + body.replace(_SLOT, nonce)


_SLOT = "RRNONCESLOT"  # stands for the nonce in the cached rewrite of each test file


@functools.lru_cache(maxsize=4096)
def _template(tests: str, top: bool) -> tuple[str, str] | None:
    """(harness, rewritten tests + epilogue) with `_SLOT` for the nonce, once per test file."""
    if _SLOT in tests:
        return None
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError):
        return None
    genuine = f"__rr_g_{_SLOT}" if top else None
    rewriter = _Rewriter(_SLOT, genuine, _bound_names(tree))
    tree = rewriter.visit(tree)
    required = _required_asserts(tree, _SLOT)
    some = rewriter.count > 0 and not required  # e.g. every assert is conditional: at least one must run
    try:
        body = ast.unparse(ast.fix_missing_locations(tree))
    except (ValueError, TypeError, RecursionError):
        return None
    harness = _HARNESS.format(n=_SLOT, g=genuine or "vars(__import__('builtins'))",
                              ok=ok_message(_SLOT), tamper=f"RR:{_SLOT}:TAMPERED:")
    return harness, body + "\n" + f"__rr_E_{_SLOT}(frozenset({sorted(required)!r}), {some})\n"


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the tests bind themselves (these are not builtins there)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
    return out


class _Rewriter(ast.NodeTransformer):
    """Builtin names -> the genuine copy; asserts -> harness checks over plain values."""

    def __init__(self, nonce: str, genuine: str | None, bound: set[str]):
        self.n, self.genuine, self.bound = nonce, genuine, bound
        self.count = 0
        self.in_assert = False

    def _call(self, name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(func=ast.Name(f"__rr_{name}_{self.n}", ast.Load()), args=list(args), keywords=[])

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if (self.genuine and isinstance(node.ctx, ast.Load) and node.id in _BUILTIN_NAMES
                and node.id not in self.bound):
            return ast.copy_location(ast.Subscript(ast.Name(self.genuine, ast.Load()), ast.Constant(node.id),
                                                   ast.Load()), node)
        return node

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        self.in_assert = True
        test = self._plain(self.visit(node.test))
        self.in_assert = False
        call = self._call("A", test, ast.Constant(self.count))
        self.count += 1
        return ast.copy_location(ast.Expr(call), node)

    def _plain(self, node: ast.expr, wrap: bool = True) -> ast.expr:
        """Wrap every value that a program could have produced in the harness's plain-value conversion.

        Call arguments are not wrapped themselves (a function gets the very object the test passes, so
        in-place semantics are kept), only what is computed inside them."""
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == self.genuine):
            return node  # a genuine builtin
        if isinstance(node, ast.Call):
            node.args = [self._plain(a, wrap=False) for a in node.args]
            for kw in node.keywords:
                kw.value = self._plain(kw.value, wrap=False)
            node.func = self._func(node.func)
            return self._call("P", node)
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Load):
            if isinstance(node, ast.Attribute):
                node.value = self._plain(node.value, wrap=False)
            elif isinstance(node, ast.Subscript):
                node.value, node.slice = self._plain(node.value, wrap=False), self._plain(node.slice, wrap=False)
            return self._call("P", node) if wrap else node
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, field, self._plain(value))
            elif isinstance(value, list):
                setattr(node, field, [self._plain(v) if isinstance(v, ast.expr) else v for v in value])
        return node

    def _func(self, func: ast.expr) -> ast.expr:
        if isinstance(func, ast.Attribute):
            func.value = self._plain(func.value, wrap=False)
        return func


def _required_asserts(tree: ast.Module, nonce: str) -> set[int]:
    """Indices of the asserts that must run: unconditional statements at module level or in a test function
    that module-level code (transitively) calls unconditionally."""
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    required: set[int] = set()
    todo, seen = [tree.body], set()
    while todo:
        for stmt in todo.pop():
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, *_BLOCKS)):
                continue
            for node in ast.walk(stmt):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                    continue
                if node.func.id == f"__rr_A_{nonce}" and isinstance(node.args[1], ast.Constant):
                    required.add(node.args[1].value)
                elif node.func.id in funcs and node.func.id not in seen:
                    seen.add(node.func.id)
                    todo.append(funcs[node.func.id].body)
    return required
