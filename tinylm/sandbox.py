"""A jinja2 sandbox whose rendering is bounded in time and in size, for chat templates (untrusted input).

jinja2's `ImmutableSandboxedEnvironment` stops templates from reaching Python internals, but not from
exhausting the machine: nested `range(100000)` loops run for minutes, `'x' * 10**10` allocates 10 GB, a
macro that calls itself recurses until Python gives up. `BoundedEnvironment` adds three bounds:

- **time**: every loop iteration, call, filter and intercepted operator checks a deadline;
- **size**: no value a template builds (string, list, integer) and no rendered output may exceed
  `Limits.max_chars` (estimated *before* the operations that multiply sizes: `*`, `**`, `%`, padding,
  `replace`, `join`, `indent`, `tojson` ...), and all the text a render emits, into its output or into
  macro and `{% set %}` buffers, counts against the same bound;
- **depth**: recursion ends as Python's `RecursionError`, which the caller maps like every other failure.

A limit that is hit raises `LimitExceeded`; `tinylm.chat` turns it into `ChatTemplateError`.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer

__all__ = ["Limits", "LimitExceeded", "BoundedEnvironment", "bounded"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on one render.

    Attributes:
        seconds: wall-clock time a render may take.
        max_chars: the largest string (or list, counted in its items' characters) a template may build,
            and the total text one render may emit.
        max_int_bits: the largest integer a template may compute (bits).
    """

    seconds: float = 2.0
    max_chars: int = 4_000_000
    max_int_bits: int = 65_536


class LimitExceeded(Exception):
    """A template went over one of its `Limits` (the message says which)."""


class _Budget:
    def __init__(self, limits: Limits, *, timed: bool = True) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds if timed else float("inf")
        self.emitted = 0
        self.steps = 0

    def tick(self) -> None:
        # the clock is read every 16 steps: each step is bounded in size, so this overshoots by milliseconds
        self.steps += 1
        if not self.steps & 15 and time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {self.limits.seconds:g} s")

    def size(self, n: int, what: str) -> None:
        if n > self.limits.max_chars:
            raise LimitExceeded(f"{what} would be {n:,} characters, over the limit of {self.limits.max_chars:,}")

    def emit(self, n: int) -> None:
        self.emitted += n
        if self.emitted > self.limits.max_chars:
            raise LimitExceeded(f"the template emitted over {self.limits.max_chars:,} characters")


_BUDGET: ContextVar[_Budget | None] = ContextVar("tinylm_template_budget", default=None)


def _budget() -> _Budget:
    # outside a render (jinja2 folding constants while compiling) sizes are still bounded; time is not measured
    return _BUDGET.get() or _Budget(Limits(), timed=False)


@contextmanager
def bounded(limits: Limits) -> Iterator[None]:
    """Apply `limits` to the templates rendered inside this block (in this thread or task)."""
    token = _BUDGET.set(_Budget(limits))
    try:
        yield
    finally:
        _BUDGET.reset(token)


# sizes -------------------------------------------------------------------------------------------


def _weight(value: Any, stop: int) -> int:
    """About how many characters `str(value)` has, counting shared items each time they occur; stops past `stop`."""
    memo: dict[int, int] = {}

    def walk(v: Any) -> int:
        if isinstance(v, str | bytes):
            return len(v)
        if isinstance(v, bool) or v is None:
            return 5
        if isinstance(v, int):
            return v.bit_length() // 3 + 1
        if isinstance(v, list | tuple | set | frozenset | dict):
            key = id(v)
            if key in memo:
                return memo[key]
            if 3 * len(v) > stop:  # str() writes at least 3 characters an item ("1, ")
                return stop + 1
            memo[key] = stop + 1  # a container that holds itself is too big
            total = 2 + 2 * len(v)
            for x in v.values() if isinstance(v, dict) else v:
                total += len(x) if type(x) is str else walk(x)
                if total > stop:
                    break
            if isinstance(v, dict):
                total += sum(walk(k) for k in v)
            memo[key] = total
            return total
        return 1

    return walk(value)


def _checked(value: Any, what: str) -> Any:
    budget = _budget()
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > budget.limits.max_int_bits:
            raise LimitExceeded(f"{what} gave an integer over {budget.limits.max_int_bits} bits")
        return value
    budget.size(_weight(value, budget.limits.max_chars), what)
    return value


_WIDTH = re.compile(r"\d+")


def _spec_width(spec: str) -> int:
    """The largest number written in a format spec or %-conversion (widths, precisions)."""
    return max((int(d) for d in _WIDTH.findall(spec)), default=0)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")


def _percent_size(fmt: str, args: Any) -> int:
    """An upper bound on the length of `fmt % args`."""
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    budget = _budget()
    size = len(fmt) + sum(_weight(v, budget.limits.max_chars) for v in values)
    for m in _PERCENT.finditer(fmt):
        for part in m.groups():
            if part == "*":
                size += max((abs(v) for v in values if isinstance(v, int)), default=0)
            elif part:
                size += int(part)
    return size


def _int_arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: int) -> int:
    value = args[index] if len(args) > index else kwargs.get(name, default)
    return value if isinstance(value, int) else default


def _join_size(sep: Any, items: list[Any]) -> int:
    stop = _budget().limits.max_chars
    return sum(_weight(x, stop) for x in items) + len(str(sep)) * max(len(items) - 1, 0)


# str methods that multiply sizes: an upper bound on their result, computed before they run
def _method_size(name: str, s: str | bytes, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    if name in ("ljust", "rjust", "center", "zfill"):
        return max(len(s), _int_arg(args, kwargs, 0, "width", 0))
    if name == "expandtabs":
        tab = "\t" if isinstance(s, str) else b"\t"
        return len(s) + s.count(tab) * max(_int_arg(args, kwargs, 0, "tabsize", 8), 0)  # type: ignore[arg-type]
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        n = s.count(old) if old else len(s) + 1
        count = _int_arg(args, kwargs, 2, "count", -1)
        return len(s) + (min(n, count) if count >= 0 else n) * len(new)
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1)
        return len(s) * max(longest, 1)
    return None


class _Formatter(SandboxedFormatter):
    """`str.format` in the sandbox, refusing field widths over the size limit before padding."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        _budget().size(_spec_width(format_spec), "a format field")
        return super().format_field(value, format_spec)


# filters -----------------------------------------------------------------------------------------


def _filter_size(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    """An upper bound on the size of filters that multiply sizes, computed before they run."""
    stop = _budget().limits.max_chars
    size = _weight(value, stop)
    if name == "center":
        return max(size, _int_arg(args, kwargs, 0, "width", 80))
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        return size + (str(value).count("\n") + 1) * max(step, 0)
    if name == "wordwrap":
        wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring") or "\n"
        return size * (1 + len(str(wrap)))
    if name == "format":
        return _percent_size(str(value), kwargs or args)
    if name == "replace" and len(args) >= 2:
        return _method_size("replace", str(value), tuple(str(a) for a in args[:2]) + args[2:], kwargs)
    if name in ("batch", "slice"):
        return size + max(_int_arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 0), 0)
    return None


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    takes_first = getattr(func, "jinja_pass_arg", None) is not None  # context, eval context or environment

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        lead = 1 if takes_first else 0
        if name == "join" and len(args) > lead and isinstance(args[lead], Iterable):
            items = list(_iterate(None, args[lead]))
            sep = args[lead + 1] if len(args) > lead + 1 else kwargs.get("d", "")
            budget.size(_join_size(sep, items), "the 'join' filter's result")
            args = (*args[:lead], items, *args[lead + 1 :])
        elif len(args) > lead:
            bound = _filter_size(name, args[lead], args[lead + 1 :], kwargs)
            if bound is not None:
                budget.size(bound, f"the {name!r} filter's result")
        return _checked(func(*args, **kwargs), f"the {name!r} filter")

    return guarded


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    """`tojson` as transformers defines it (non-ASCII kept), built chunk by chunk within the size limit."""
    budget = _budget()
    if (isinstance(indent, int) and indent > 16) or (isinstance(indent, str) and len(indent) > 16):
        raise LimitExceeded(f"tojson indent {indent!r} is over 16")
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    parts, size = [], 0
    for chunk in encoder.iterencode(value):
        size += len(chunk)
        budget.size(size, "tojson's output")
        parts.append(chunk)
    return "".join(parts)


@jinja2.pass_context
def _iterate(context: Any, iterable: Any) -> Iterator[Any]:
    """Wraps every `{% for %}`'s iterable: each step checks the deadline."""
    budget = _budget()
    for item in iterable:
        budget.tick()
        yield item


@jinja2.pass_context
def _emit(context: Any, value: Any) -> str:
    """Wraps every piece of output (into the result, a macro's or a `{% set %}` block's buffer)."""
    text = value if isinstance(value, str) else str(value)
    _budget().emit(len(text))
    return text


@jinja2.pass_context
def _concat(context: Any, values: list[Any]) -> str:
    """The `~` operator, within the size limit."""
    budget = _budget()
    parts = [v if isinstance(v, str) else str(v) for v in values]
    budget.size(sum(len(p) for p in parts), "a '~' concatenation")
    return "".join(parts)


_ITER, _EMIT, _CONCAT = "tinylm_guard_iter", "tinylm_guard_emit", "tinylm_guard_concat"


class _Guard(NodeTransformer):
    """Route loops, output and `~` through the guards above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [nodes.Filter(n, _EMIT, [], [], None, None, lineno=n.lineno) for n in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes), _CONCAT, [], [], None, None, lineno=node.lineno)


def _range(*args: int) -> range:
    """jinja2's sandboxed range, whose refusal is a limit like the others."""
    from jinja2.sandbox import MAX_RANGE, safe_range

    try:
        return safe_range(*args)
    except OverflowError:
        raise LimitExceeded(f"range{args} has over {MAX_RANGE:,} items") from None


# the environment --------------------------------------------------------------------------------

_ARITHMETIC = frozenset({"+", "*", "**", "%"})


def _binop_size(op: str, left: Any, right: Any) -> None:
    budget = _budget()
    stop, bits = budget.limits.max_chars, budget.limits.max_int_bits
    ints = isinstance(left, int) and isinstance(right, int)
    if op == "*":
        if ints:
            if left.bit_length() + right.bit_length() > bits:
                raise LimitExceeded(f"'*' would give an integer over {bits} bits")
        elif isinstance(right, int) and not isinstance(left, int | float):
            budget.size(_weight(left, stop) * max(right, 0), "a '*' repetition")
        elif isinstance(left, int) and not isinstance(right, int | float):
            budget.size(_weight(right, stop) * max(left, 0), "a '*' repetition")
    elif op == "**" and ints and right > 0 and abs(left) > 1:
        if left.bit_length() * right > bits:
            raise LimitExceeded(f"'**' would give an integer over {bits} bits")
    elif op == "+" and not ints and not isinstance(left, int | float):
        budget.size(_weight(left, stop) + _weight(right, stop), "a '+' concatenation")
    elif op == "%" and isinstance(left, str):
        budget.size(_percent_size(left, right), "a '%' format")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with every loop, call, filter, output and sizing operator bounded.

    Render inside `bounded(limits)`; outside it sizes are bounded by the default `Limits` and time is not.
    """

    intercepted_binops = _ARITHMETIC

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: no use in a chat template
        self.filters.pop("pprint", None)  # output size not computable ahead
        self.globals["range"] = _range
        self.filters["tojson"] = _tojson
        for name, func in list(self.filters.items()):
            self.filters[name] = _guard_filter(name, func)
        self.filters[_ITER], self.filters[_EMIT], self.filters[_CONCAT] = _iterate, _emit, _concat

    def compile_template(self, source: str) -> jinja2.Template:
        """Parse `source`, add the guards, compile."""
        tree = _Guard().visit(self.parse(source))
        tree.set_environment(self)
        return self.from_string(tree)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "+" and type(left) is str and type(right) is str:  # the common case, kept cheap
            budget.size(len(left) + len(right), "a '+' concatenation")
            return left + right
        _binop_size(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        # sizes were bounded before; integers are checked here (their size is cheap to read)
        return _checked(result, f"the {operator!r} operator") if isinstance(result, int) else result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        target = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(target, str | bytes):
            if name == "join" and args and isinstance(args[0], Iterable):
                items = list(_iterate(__context, args[0]))
                budget.size(_join_size(target, items), "a join")
                args = (items, *args[1:])
            else:
                bound = _method_size(name, target, args, kwargs)
                if bound is not None:
                    budget.size(bound, f"str.{name}()")
        return _checked(super().call(__context, __obj, *args, **kwargs), f"calling {name or 'a function'}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        formatter, text = _Formatter(self), value.__self__

        @functools.wraps(wrapped)
        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if value.__name__ == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return bounded_format
