"""One whole-image pass of a convolutional network, computed a few rows at a time.

Windows recompute what they share: a 3D fnet's output depends on input 94 voxels away, so
exact crop tiling needs halos that double the work, and blending computes about 1.6 times the
image. Here the network runs as a pipeline along one spatial axis (the *stream* axis): every
layer computes each row of its output once, keeps the rows its consumers will still read (a
convolution's halo, a skip connection's latency), and drops the rest. The result is the
whole-image pass up to float rounding, with memory bounded by the cross-section of the image
times the network's receptive field instead of the whole image.

The network is traced once with ``make_fx`` (the ATen operators it calls on an example
input). Streaming handles convolutions (any kernel, stride, dilation, zero padding, groups,
transposed), concatenation along channels, and per-pixel operators; anything else (norms
over the image, attention, pooling with indices, interpolation to a traced size) makes the
network not streamable, and prediction falls back to windows. A traced graph is also checked
against the network itself on a small input before it is used.

Nothing in torch or MONAI runs a network this way (MONAI's inferers all cut windows), hence
this module.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from im2im_core.inference.sliding_window import release_freed_memory

aten = torch.ops.aten

#: Per-pixel ATen operators (output at a pixel depends on the inputs at that pixel only), with
#: the out-of-place operator that replaces an in-place one where its input may be read again.
_POINTWISE: dict[Any, Any] = {}
for _name in ("relu", "leaky_relu", "_prelu_kernel", "prelu", "sigmoid", "tanh", "gelu", "silu", "elu", "hardtanh",
              "hardswish", "hardsigmoid", "mish", "softplus", "clamp", "clone", "abs", "exp", "neg", "add", "sub",
              "mul", "div", "rsub", "where", "maximum", "minimum"):
    _packet = getattr(aten, _name, None)
    if _packet is None:
        continue
    _inplace = getattr(aten, _name + "_", None)
    for _overload in _packet.overloads():
        _POINTWISE[getattr(_packet, _overload)] = getattr(_packet, _overload)
        if _inplace is not None and _overload in _inplace.overloads():
            _POINTWISE[getattr(_inplace, _overload)] = getattr(_packet, _overload)
_CONVOLUTION = aten.convolution.default
_BATCH_NORM = aten.native_batch_norm.default
_RELU = (aten.relu.default, aten.relu_.default)
_CAT = aten.cat.default


def _batch_norm_eval(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, mean: torch.Tensor,
                     var: torch.Tensor, eps: float) -> torch.Tensor:
    """An eval-mode batch norm: a per-channel affine map of each pixel (traced networks keep their
    own weights, so the streamed pass needs no folded copy of them).
    """
    return torch.nn.functional.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)


_POINTWISE[_batch_norm_eval] = _batch_norm_eval


@dataclass(frozen=True)
class _Statistics:
    """The mean and inverse-std outputs of an eval-mode batch norm: unused, and not streamable if used."""


class NotStreamable(Exception):
    """The network uses an operator that a row-by-row pass cannot reproduce."""


@dataclass
class _Stage:
    """A node of the streamed graph: one primary operator, then per-pixel operators fused into it.

    ``kind`` is ``input``, ``conv`` (``params``: stride, padding, dilation, transposed,
    output_padding, groups; ``consts``: weight, bias), ``cat`` or ``pointwise`` (``op`` with
    ``args`` where ``_Ref`` marks a streamed input). ``then`` holds fused per-pixel steps
    ``(op, args)`` applied to the stage's own output.
    """

    kind: str
    inputs: list[int]
    op: Any = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    params: tuple = ()
    consts: tuple = ()
    then: list[tuple[Any, tuple, dict]] = field(default_factory=list)


@dataclass(frozen=True)
class _Ref:
    """A streamed tensor argument: the output of stage ``index``."""

    index: int


def _spatial_one(constant: torch.Tensor, rank: int) -> bool:
    """Whether ``constant`` broadcast against a ``rank``-D feature map has size 1 along every spatial axis."""
    shape = [1] * (rank - constant.ndim) + list(constant.shape)
    return constant.ndim <= rank and all(n == 1 for n in shape[2:])


def trace(network: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> tuple[list[_Stage], int]:
    """The streamed graph of ``network`` traced on ``example`` ``(1, C, *spatial)``: its stages
    and the index of the output stage.

    Raises
    ------
    NotStreamable
        If the network calls an operator that cannot be computed row by row, returns anything
        but one tensor, or cannot be traced.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        with torch.inference_mode(False), torch.no_grad():
            graph = make_fx(network)(example)
    except Exception as exc:  # noqa: BLE001 - any failure to trace means "use windows"
        raise NotStreamable(f"tracing failed ({type(exc).__name__}: {exc})") from None
    rank = example.ndim
    stages: list[_Stage] = []
    values: dict[str, Any] = {}  # fx node name -> _Ref (streamed) or a constant
    users = {node.name: len(node.users) for node in graph.graph.nodes}
    tails: dict[int, str] = {}  # stage -> the fx node whose value it holds now
    output_ref: _Ref | None = None
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            if stages:
                raise NotStreamable("the network takes more than one input")
            stages.append(_Stage("input", []))
            values[node.name], tails[0] = _Ref(0), node.name
        elif node.op == "get_attr":
            values[node.name] = getattr(graph, node.target)
        elif node.op == "output":
            result = node.args[0]
            result = result[0] if isinstance(result, (tuple, list)) and len(result) == 1 else result
            if not isinstance(result, torch.fx.Node) or not isinstance(values.get(result.name), _Ref):
                raise NotStreamable("the network does not return one tensor computed from its input")
            output_ref = values[result.name]
        elif node.op == "call_function" and node.target is operator.getitem and isinstance(
                values.get(getattr(node.args[0], "name", "")), tuple):
            values[node.name] = values[node.args[0].name][node.args[1]]  # one output of a batch norm
            if isinstance(values[node.name], _Ref) and tails.get(values[node.name].index) == node.args[0].name:
                tails[values[node.name].index] = node.name  # the normalized map, held by this name now
        elif node.op == "call_function":
            args = torch.fx.node.map_arg(node.args, lambda n: values[n.name])
            if any(isinstance(a, _Statistics) for a in _flat(args)):
                raise NotStreamable("a batch norm's statistics outputs are used")
            if node.target is _BATCH_NORM:
                x, weight, bias, mean, var, training, _, eps = args
                if training or not isinstance(x, _Ref):
                    raise NotStreamable("a batch norm in training mode (statistics of the image)")
                node_args = (x, weight, bias, mean, var, eps)
                source_names = [n.name for n in node.all_input_nodes if isinstance(values.get(n.name), _Ref)]
                fusable = users[source_names[0]] == 1 and tails.get(x.index) == source_names[0]
                ref = _add_stage(stages, _batch_norm_eval, node_args, {}, [x], rank, fusable, per_channel=True)
                tails[ref.index] = node.name
                values[node.name] = (ref, _Statistics(), _Statistics())
                continue
            kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: values[n.name])
            refs = [a for a in [*_flat(args), *_flat(kwargs)] if isinstance(a, _Ref)]
            if not refs:  # computed from constants only (a weight reshaped): evaluate once
                values[node.name] = node.target(*args, **kwargs)
                continue
            source_names = [n.name for n in node.all_input_nodes if isinstance(values.get(n.name), _Ref)]
            fusable = len(source_names) == 1 and users[source_names[0]] == 1 and tails.get(
                values[source_names[0]].index) == source_names[0]
            if node.target in _POINTWISE and _POINTWISE[node.target] is not node.target and not fusable:
                raise NotStreamable(f"in-place {node.target} on a value that is read elsewhere")
            ref = _add_stage(stages, node.target, args, kwargs, refs, rank, fusable)
            tails[ref.index] = node.name
            values[node.name] = ref
        else:
            raise NotStreamable(f"unsupported graph node {node.op} {node.target}")
    if output_ref is None:
        raise NotStreamable("the network has no output")
    return stages, output_ref.index


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [item for v in value for item in _flat(v)]
    if isinstance(value, dict):
        return [item for v in value.values() for item in _flat(v)]
    return [value]


def _add_stage(stages: list[_Stage], target: Any, args: tuple, kwargs: dict, refs: list[_Ref], rank: int,
               fusable: bool, per_channel: bool = False) -> _Ref:
    """Append the stage of one traced call (or fuse it into the stage it follows) and return its reference."""
    if target is _CONVOLUTION:
        x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = args
        if not isinstance(x, _Ref) or isinstance(weight, _Ref) or isinstance(bias, _Ref):
            raise NotStreamable("a convolution whose weights depend on the input")
        stages.append(_Stage("conv", [x.index], params=(list(stride), list(padding), list(dilation), bool(transposed),
                                                         list(output_padding), int(groups)), consts=(weight, bias)))
        return _Ref(len(stages) - 1)
    if target is _CAT:
        tensors, dim = args[0], (args[1] if len(args) > 1 else kwargs.get("dim", 0))
        if dim % rank != 1 or not all(isinstance(t, _Ref) for t in tensors):
            raise NotStreamable(f"concatenation along dimension {dim} (only channels can be streamed)")
        stages.append(_Stage("cat", [t.index for t in tensors]))
        return _Ref(len(stages) - 1)
    if target not in _POINTWISE:
        raise NotStreamable(f"operator {target} is not known to act pixel by pixel")
    for value in [] if per_channel else [*_flat(args), *_flat(kwargs)]:
        if isinstance(value, torch.Tensor) and not _spatial_one(value, rank):
            raise NotStreamable(f"{target} with a constant of spatial shape {tuple(value.shape)}")
    if fusable and stages[refs[0].index].kind != "input":  # a per-pixel step on a fresh output read nowhere else:
        stages[refs[0].index].then.append((target, args, kwargs))  # fused into that stage, in place where it was
        return refs[0]
    stages.append(_Stage("pointwise", sorted({r.index for r in refs}), op=_POINTWISE[target], args=args, kwargs=kwargs))
    return _Ref(len(stages) - 1)


def _on_meta(value: Any) -> Any:
    """``value`` with every tensor in it replaced by an empty one of its shape on the ``meta`` device."""
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device="meta")
    if isinstance(value, (tuple, list)):
        return type(value)(_on_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _on_meta(v) for k, v in value.items()}
    return value


def _replace_refs(value: Any, tensors: dict[int, torch.Tensor]) -> Any:
    if isinstance(value, _Ref):
        return tensors[value.index]
    if isinstance(value, (tuple, list)):
        return type(value)(_replace_refs(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _replace_refs(v, tensors) for k, v in value.items()}
    return value


def _lengths(stages: list[_Stage], length: int, axis: int) -> list[int]:
    """Length of every stage's output along spatial ``axis`` for an input of ``length`` rows."""
    lengths: list[int] = []
    for stage in stages:
        if stage.kind == "input":
            lengths.append(length)
            continue
        source = lengths[stage.inputs[0]]
        if stage.kind == "cat" and len({lengths[i] for i in stage.inputs}) > 1:
            raise NotStreamable(f"concatenated maps of {[lengths[i] for i in stage.inputs]} rows")
        if stage.kind != "conv":
            lengths.append(source)
            continue
        stride, padding, dilation, transposed, output_padding, _ = stage.params
        kernel = stage.consts[0].shape[2 + axis]
        s, p, d = stride[axis], padding[axis], dilation[axis]
        if transposed:
            lengths.append((source - 1) * s - 2 * p + d * (kernel - 1) + output_padding[axis] + 1)
        else:
            lengths.append((source + 2 * p - d * (kernel - 1) - 1) // s + 1)
    return lengths


class _Rows:
    """The rows of one stage's output that its readers may still read, in a ring buffer.

    Row ``r`` lives in slot ``r % capacity`` along the streamed dimension, so appending rows
    never moves the ones kept (a skip connection keeps a hundred), and a read is a view of the
    buffer unless it crosses the ring's end. The buffer grows when the rows kept and appended
    do not fit.
    """

    def __init__(self, dim: int, layout: torch.memory_format, planned: int = 0) -> None:
        self.dim, self.layout, self.planned = dim, layout, planned
        self.buffer: torch.Tensor | None = None
        self.end = 0  # rows 0..end-1 have been computed
        self.keep = 0  # rows before it are read by no one again
        self.readers: dict[int, int] = {}  # reader -> the first row it may read next

    @property
    def capacity(self) -> int:
        return 0 if self.buffer is None else self.buffer.shape[self.dim]

    def nbytes(self) -> int:
        return 0 if self.buffer is None else self.buffer.numel() * self.buffer.element_size()

    def _slots(self, first: int, end: int) -> list[tuple[int, int, int]]:
        """``(row, slot, count)`` runs of rows ``first..end-1`` that are contiguous in the buffer."""
        runs, row = [], first
        while row < end:
            slot = row % self.capacity
            count = min(end - row, self.capacity - slot)
            runs.append((row, slot, count))
            row += count
        return runs

    def append(self, y: torch.Tensor, relu: bool) -> None:
        """Store ``y`` as the next rows (``relu``: store ``max(y, 0)``, written straight into the buffer)."""
        rows = y.shape[self.dim]
        if self.end + rows - self.keep > self.capacity:
            self._grow(y, self.end + rows - self.keep)
        assert self.buffer is not None
        for row, slot, count in self._slots(self.end, self.end + rows):
            target = self.buffer.narrow(self.dim, slot, count)
            source = y.narrow(self.dim, row - self.end, count)
            if relu:
                torch.clamp_min(source, 0, out=target)
            else:
                target.copy_(source)
        self.end += rows

    def _grow(self, like: torch.Tensor, needed: int) -> None:
        """A larger ring of at least ``needed`` rows, the kept rows copied into their new slots."""
        old, old_capacity = self.buffer, self.capacity
        shape = list(like.shape)
        # exact on the meta device (a dry run that sizes the real rings), else a quarter more, so growing is rare
        exact = like.device.type == "meta" or needed <= self.planned
        shape[self.dim] = max(needed, self.planned) if exact else needed + needed // 4 + 1
        self.buffer = like.new_empty(shape).contiguous(memory_format=self.layout)
        if old is None:
            return
        for row, slot, count in self._slots(self.keep, self.end):
            source_slot, done = row % old_capacity, 0
            while done < count:  # the kept rows may cross the old ring's end too
                n = min(count - done, old_capacity - source_slot)
                self.buffer.narrow(self.dim, slot + done, n).copy_(old.narrow(self.dim, source_slot, n))
                done, source_slot = done + n, (source_slot + n) % old_capacity

    def read(self, first: int, end: int) -> torch.Tensor:
        """Rows ``first..end-1``: a view of the buffer, or a copy where they cross the ring's end."""
        assert self.buffer is not None and self.keep <= first and end <= self.end
        parts = [self.buffer.narrow(self.dim, slot, count) for _, slot, count in self._slots(first, end)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, self.dim)


def _layout_of(x: torch.Tensor) -> torch.memory_format:
    """Channels-last where ``x`` is laid out so, else the default layout."""
    last = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
    return last if last is not None and x.is_contiguous(memory_format=last) else torch.contiguous_format


class StreamedPass:
    """One pass of a traced network over an input ``(B, C, *spatial)``, row chunk by row chunk along ``axis``.

    Each stage computes its rows in order, at most ``chunk`` at a time, when a reader asks for
    rows it has not computed yet, and keeps them (:class:`_Rows`) until every reader has moved
    past them. A reader's rows stay valid until it has computed what it read them for: it
    announces where its next read starts only then.

    Parameters
    ----------
    stages, output : the result of :func:`trace`.
    axis : int
        Spatial axis streamed (0 is the first spatial axis); fastest where it is the outermost
        dimension of the tensors' memory layout.
    chunk : int
        Output rows computed per step.
    """

    def __init__(self, stages: list[_Stage], output: int, axis: int, chunk: int,
                 capacities: Sequence[int] | None = None, layout: torch.memory_format | None = None) -> None:
        self.stages, self.output, self.axis, self.chunk, self.given_layout = stages, output, axis, chunk, layout
        self.capacities = list(capacities) if capacities is not None else [0] * len(stages)
        self.readers = [sum(index in s.inputs for s in stages) + (index == output) for index in range(len(stages))]
        self.passing = [s.kind == "cat" and not s.then and n == 1 and i != output
                        for i, (s, n) in enumerate(zip(stages, self.readers))]
        self.peak_bytes = 0

    def __call__(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The pass over ``x``, written into ``out`` where given (any strides, e.g. a permuted view)."""
        dim = 2 + self.axis
        self.x, self.dim = x, dim
        self.lengths = _lengths(self.stages, x.shape[dim], self.axis)
        self.layout = self.given_layout if self.given_layout is not None else _layout_of(x)
        self.rows = [_Rows(dim, self.layout, planned) for planned in self.capacities]
        self.pending: dict[int, list[tuple[int, int]]] = {}  # reader -> (stage, next first row) to announce
        total = self.lengths[self.output]
        try:
            for first in range(0, total, self.chunk):
                end = min(first + self.chunk, total)
                part = self._read(self.output, first, end, -1, end)
                if out is None:
                    shape = list(part.shape)
                    shape[dim] = total
                    out = part.new_empty(shape)
                out.narrow(dim, first, part.shape[dim]).copy_(part)
                self._announce(-1)
            assert out is not None
            return out
        finally:
            self.capacities = [r.capacity for r in self.rows]
            del self.rows, self.x

    def _read(self, index: int, first: int, end: int, reader: int, keep: int) -> torch.Tensor:
        """Rows ``first..end-1`` of stage ``index`` (inside its length), as read by stage ``reader``,
        whose later reads start at row ``keep`` or after (announced once ``reader`` has used these).
        """
        stage = self.stages[index]
        if stage.kind == "input":
            return self.x.narrow(self.dim, first, end - first)
        if self.passing[index]:  # a concatenation read once: a copy of its inputs' rows, made where it is read
            return torch.cat([self._read(i, first, end, reader, keep) for i in stage.inputs], 1)
        rows = self.rows[index]
        rows.readers[reader] = min(rows.readers.get(reader, first), first)  # until announced, these rows stay
        while end > rows.end:  # at most a chunk at a time, so that what feeds this stage is never held whole
            step = min(end, rows.end + self.chunk)
            y, relu = self._compute(index, rows.end, step)
            self._forget(index)
            rows.append(y, relu)
            del y
            self._announce(index)
            self.peak_bytes = max(self.peak_bytes, sum(r.nbytes() for r in self.rows))
        self.pending.setdefault(reader, []).append((index, keep))
        return rows.read(first, end)

    def _announce(self, reader: int) -> None:
        """``reader`` is done with what it read: its next reads start where it said."""
        for index, keep in self.pending.pop(reader, []):
            self.rows[index].readers[reader] = keep

    def _forget(self, index: int) -> None:
        rows = self.rows[index]
        if len(rows.readers) == self.readers[index]:  # rows before every reader's next read are free slots
            rows.keep = max(rows.keep, min(rows.readers.values()))

    def _padded(self, index: int, first: int, end: int, reader: int, keep: int) -> torch.Tensor:
        """Rows ``first..end-1`` of stage ``index``, zeros where they fall outside it (a convolution's padding)."""
        length = self.lengths[index]
        keep = min(max(keep, 0), length)
        inside = self._read(index, max(first, 0), min(end, length), reader, keep) if min(end, length) > max(first, 0) \
            else None
        before, after = max(0, -first), max(0, end - max(length, first))
        if inside is None:
            after = end - first - before
        if not before and not after:
            return inside
        template = inside if inside is not None else self._read(index, length - 1, length, reader, keep)
        shape = list(template.shape)
        pieces = []
        for rows in (before, None, after):
            if rows is None:
                if inside is not None:
                    pieces.append(inside)
            elif rows:
                shape[self.dim] = rows
                pieces.append(template.new_zeros(shape).contiguous(memory_format=self.layout))
        return torch.cat(pieces, self.dim)

    def _compute(self, index: int, first: int, end: int) -> tuple[torch.Tensor, bool]:
        """Rows ``first..end-1`` of stage ``index``, and whether a final ReLU is left for the store to apply."""
        stage = self.stages[index]
        if stage.kind == "cat":
            y = torch.cat([self._read(i, first, end, index, end) for i in stage.inputs], 1)
        elif stage.kind == "pointwise":
            tensors = {i: self._read(i, first, end, index, end) for i in stage.inputs}
            y = stage.op(*_replace_refs(stage.args, tensors), **_replace_refs(stage.kwargs, tensors))
        else:
            y = self._convolution(index, stage, first, end)
        steps = stage.then
        relu = bool(steps) and steps[-1][0] in _RELU and steps[-1][1] == (_Ref(index),) and not steps[-1][2]
        for op, args, kwargs in steps[:-1] if relu else steps:
            mapping = {index: y}
            y = op(*_replace_refs(args, mapping), **_replace_refs(kwargs, mapping))
        return y, relu

    def _convolution(self, index: int, stage: _Stage, first: int, end: int) -> torch.Tensor:
        stride, padding, dilation, transposed, output_padding, groups = stage.params
        weight, bias = stage.consts
        a = self.axis
        s, p, reach = stride[a], padding[a], dilation[a] * (weight.shape[2 + a] - 1)
        source = stage.inputs[0]
        padding, output_padding = list(padding), list(output_padding)
        padding[a] = 0
        if not transposed:  # output row o reads input rows o*s - p .. o*s - p + reach
            x = self._padded(source, first * s - p, (end - 1) * s - p + reach + 1, index, end * s - p)
            x = x.contiguous(memory_format=self.layout)  # another layout would take a slower convolution
            return aten.convolution(x, weight, bias, stride, padding, dilation, False, output_padding, groups)
        # transposed: input row i writes output rows i*s - p .. i*s - p + reach
        output_padding[a] = 0
        lo = max(0, -(-(first + p - reach) // s))
        hi = min(self.lengths[source], (end - 1 + p) // s + 1)
        if hi <= lo:
            raise NotStreamable("a transposed convolution with rows that no input reaches")
        keep = min(max(0, -(-(end + p - reach) // s)), self.lengths[source])
        x = self._read(source, lo, hi, index, keep).contiguous(memory_format=self.layout)
        y = aten.convolution(x, weight, bias, stride, padding, dilation, True, output_padding, groups)
        offset = first + p - lo * s  # y's row 0 is output row lo*s - p
        if offset >= 0 and offset + (end - first) <= y.shape[self.dim]:
            return y.narrow(self.dim, offset, end - first)
        raise NotStreamable("a transposed convolution whose output rows only its bias reaches (stride above the kernel "
                            "or output padding)")


#: Voxels of one step of the streamed pass (output rows times the cross-section): large enough
#: that each convolution call keeps the cores busy, small enough that a step's maps stay small.
STEP_VOXELS = 2**17
#: Weights of at most this size are copied into the permuted layout; larger ones (the deep levels,
#: where a 3D fnet keeps 80 of its 93 MB and spends little of its time) stay views, which oneDNN
#: reorders at each call for about 7 % more time on those convolutions.
COPIED_WEIGHT_BYTES = 2**22
#: Largest difference from the network itself, relative to its largest output, that the check of
#: a traced graph accepts (float rounding of reordered sums is ~1e-7).
CHECK_TOLERANCE = 1e-4


def stream_axis(spatial: Sequence[int]) -> int:
    """The spatial axis to stream: the longest (the smallest cross-section), the first of equals."""
    return max(range(len(spatial)), key=lambda a: (spatial[a], -a))


def stream_order(spatial: Sequence[int]) -> tuple[int, ...]:
    """The spatial axes in the order a streamed pass lays them out: the streamed axis first (the
    outermost dimension of a channels-last map, so a chunk of rows is one contiguous block), then
    the others longest first (oneDNN takes the fast convolution only where the channels times the
    first two spatial sizes exceed 20480, torch's ``use_mkldnn`` rule).
    """
    axis = stream_axis(spatial)
    rest = sorted((a for a in range(len(spatial)) if a != axis), key=lambda a: (-spatial[a], a))
    return (axis, *rest)


def step_rows(spatial: Sequence[int], axis: int) -> int:
    """Output rows per step for an image of ``spatial`` streamed along ``axis``."""
    cross = math.prod(n for a, n in enumerate(spatial) if a != axis)
    return max(1, STEP_VOXELS // max(1, cross))


class StreamedNetwork:
    """``network``'s whole-image pass as a streamed pass (:class:`StreamedPass`), checked against the network.

    Parameters
    ----------
    network : callable
        Maps ``(B, C, *spatial)`` to ``(B, C_out, *spatial)``; in eval mode.
    channels : int
        Input channels.
    spatial_dims : int
        2 or 3.
    align : int
        Every size the network is given is a multiple of it (its grid, e.g. 16 for 4 halvings).
    layout : torch.memory_format, optional
        Memory format of the inputs (channels-last on the CPU), used for the traced example.
    device : torch.device
    reference : callable, optional
        What the streamed pass is checked against (default ``network``): the module itself
        where ``network`` is its inference copy, so that the copy's weights are held only once,
        by the traced stages.

    Raises
    ------
    NotStreamable
        At construction, if the network cannot be streamed; at :meth:`check`, if the streamed
        pass differs from the network.
    """

    def __init__(self, network: Callable[[torch.Tensor], torch.Tensor], channels: int, spatial_dims: int, align: int,
                 layout: torch.memory_format | None, device: torch.device,
                 reference: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.network = reference if reference is not None else network
        self.channels, self.spatial_dims, self.align = channels, spatial_dims, align
        self.layout, self.device = layout or torch.contiguous_format, device
        example = self._input([2 * align] * spatial_dims, torch.Generator().manual_seed(0))
        self.stages, self.output = trace(network, example)
        self.order = tuple(range(spatial_dims))  # how self.stages' weights are laid out
        self.checked: dict[tuple[int, ...], bool] = {}
        self._capacities: dict[tuple[int, ...], list[int]] = {}  # ring sizes per input shape (dry runs)
        self._out_channels: dict[tuple[int, ...], int] = {}
        self.weight_layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(example.ndim) \
            if self.layout != torch.contiguous_format else torch.contiguous_format
        self.peak_bytes = 0

    def _input(self, spatial: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        x = torch.randn((1, self.channels, *spatial), generator=generator)
        return x.to(self.device).contiguous(memory_format=self.layout)

    def along(self, order: tuple[int, ...]) -> list[_Stage]:
        """The stages for spatial axes laid out in ``order`` (:func:`stream_order`): weights and
        parameters permuted alike. Only one layout is held (a 3D fnet's weights are 93 MB): the
        stages are permuted from the last one asked for.
        """
        if order != self.order:
            move = [self.order.index(a) for a in order]  # new axis k is old axis move[k]
            moved = []
            for stage in self.stages:
                if stage.kind == "conv":
                    stride, padding, dilation, transposed, output_padding, groups = stage.params
                    weight, bias = stage.consts
                    weight = weight.permute(0, 1, *(2 + m for m in move))
                    if weight.numel() * weight.element_size() <= COPIED_WEIGHT_BYTES:
                        weight = weight.contiguous(memory_format=self.weight_layout)
                    params = ([stride[m] for m in move], [padding[m] for m in move], [dilation[m] for m in move],
                              transposed, [output_padding[m] for m in move], groups)
                    stage = _Stage(stage.kind, stage.inputs, stage.op, stage.args, stage.kwargs, params, (weight, bias),
                                   stage.then)
                moved.append(stage)
            self.stages, self.order = moved, order
        return self.stages

    def _run(self, x: torch.Tensor, order: tuple[int, ...], chunk: int,
             capacities: Sequence[int] | None = None) -> tuple[torch.Tensor, int]:
        """The streamed pass over ``x`` laid out in ``order``, ``chunk`` rows at a time (rings sized to
        ``capacities``, from a dry run), and the bytes it kept at most.
        """
        run = StreamedPass(self.along(order), self.output, 0, chunk, capacities, self.layout)
        permuted = (0, 1, *(2 + a for a in order))
        inner = x.permute(*permuted)  # not copied: each step's rows are, by its first convolution
        out = None
        if tuple(x.shape[2:]) in self._out_channels:  # written in the input's axis order, so that none is moved later
            out = x.new_empty((x.shape[0], self._out_channels[tuple(x.shape[2:])], *x.shape[2:])).permute(*permuted)
        back = [0, 1, *(2 + order.index(a) for a in range(len(order)))]
        return run(inner, out).permute(*back), run.peak_bytes

    def check(self, order: tuple[int, ...]) -> None:
        """Compare the streamed pass in ``order`` with the network on a small noise input (once per order)."""
        if order in self.checked:
            if not self.checked[order]:
                raise NotStreamable(f"the streamed pass along axis {order[0]} differs from the network")
            return
        lengths = [3 * self.align, *[2 * self.align] * (len(order) - 1)]  # the test input keeps the order
        spatial = [lengths[order.index(a)] for a in range(len(order))]
        x = self._input(spatial, torch.Generator().manual_seed(1))
        with torch.no_grad():
            try:
                reference = self.network(x).float()
                streamed = self._run(x, order, max(1, self.align // 2))[0].float()
            except NotStreamable:
                self.checked[order] = False
                raise
            except Exception as exc:  # noqa: BLE001 - a graph the network's own code rejects
                self.checked[order] = False
                raise NotStreamable(f"the streamed pass failed ({type(exc).__name__}: {exc})") from None
        scale = float(reference.abs().max()) or 1.0
        same = streamed.shape == reference.shape and float((streamed - reference).abs().max()) <= CHECK_TOLERANCE * scale
        self.checked[order] = same
        if not same:
            raise NotStreamable(f"the streamed pass along axis {order[0]} differs from the network")

    def memory(self, spatial: Sequence[int]) -> tuple[int, int]:
        """``(kept bytes, output channels)`` of a streamed pass over one image of ``spatial``,
        found by running it on the ``meta`` device (shapes only, no pixels).
        """
        order = stream_order(spatial)
        meta_stages = [_Stage(s.kind, s.inputs, s.op, _on_meta(s.args), _on_meta(s.kwargs), s.params,
                              _on_meta(s.consts), _on_meta(s.then)) for s in self.along(order)]
        run = StreamedPass(meta_stages, self.output, 0, step_rows(spatial, order[0]), layout=self.layout)
        inner = [spatial[a] for a in order]
        out = run(torch.empty((1, self.channels, *inner), device="meta"))
        self._capacities[(*spatial, STEP_VOXELS)] = run.capacities  # rings depend on the step too
        self._out_channels[tuple(spatial)] = int(out.shape[1])
        return run.peak_bytes, int(out.shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The streamed pass over ``x`` ``(B, C, *spatial)`` along its longest axis (checked first, once per layout)."""
        spatial = x.shape[2:]
        order = stream_order(spatial)
        with torch.autocast(x.device.type, enabled=False):  # the check compares float32 passes
            self.check(order)
        if (*spatial, STEP_VOXELS) not in self._capacities:
            self.memory(spatial)
        release_freed_memory()  # what tracing and checking left in the heap is not where the rings will fit
        out, kept = self._run(x, order, step_rows(spatial, order[0]), self._capacities[(*spatial, STEP_VOXELS)])
        self.peak_bytes = max(self.peak_bytes, kept)
        return out
