"""Per-sample gradients from one batched backward pass, layer by layer.

``vmap(grad(...))`` differentiates each sample through a batched-tensor disguise of the
network: its per-sample convolution gradients are grouped convolutions, which a CPU runs as
a loop over groups and a GPU pays for in operator launches. When every parameter of a
network belongs to a ``Conv2d`` (one group, numeric zero padding), a ``Linear`` on
(batch, features) or a ``BatchNorm2d``, each per-sample gradient has a closed form in the
layer's input and the gradient at its output (Goodfellow 2015; the rules Opacus uses):

- Conv2d:  ∂W[n] = g[n] · unfold(x[n])ᵀ,   ∂b[n] = Σ_hw g[n]
- Linear:  ∂W[n] = g[n] ⊗ x[n],            ∂b[n] = g[n]
- BN:      ∂γ[n] = Σ_hw g[n] ⊙ x̂[n],        ∂β[n] = Σ_hw g[n]

So one batched forward, one backward to the input (tensor hooks collect each layer's output
gradient; no parameter gradient is formed) and one batched product per layer give them all.
This is exact only while no layer mixes samples: BN normalises each sample by its own
statistics (``per_sample``, as BN on a batch of one does) or by its running statistics
(``eval``). A network with any other parameterised layer returns ``None``, and the caller
keeps to vmap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


class Unsupported(Exception):
    """The network has a layer or a use of one that the closed forms do not cover."""


@dataclass
class LayerCall:
    """One forward call of a supported layer: its input, and its output's gradient (input,
    output and gradient are dropped once a streamed call's products are formed)."""

    module: nn.Module
    input: torch.Tensor | None
    input_version: int
    output: torch.Tensor | None
    output_version: int
    grad: torch.Tensor | None = field(default=None)
    hook: torch.utils.hooks.RemovableHandle | None = field(default=None)

    def overwritten(self) -> bool:
        """Whether an in-place op changed what the closed form reads: the input (read after
        the forward), or an output that is a view (its gradient hook is then lost)."""
        return self.input._version != self.input_version or (
            self.output._base is not None and self.output._version != self.output_version)


def supports(model: nn.Module) -> bool:
    """Whether every parameter of ``model`` belongs directly to a layer with a closed form."""
    owned = {id(p) for m in model.modules() if _closed_form_layer(m) for p in m.parameters(recurse=False)}
    return all(id(p) in owned for p in model.parameters())


def _closed_form_layer(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return isinstance(module, (nn.Linear, nn.BatchNorm2d))


class _PerSampleNorm(nn.Module):
    """BatchNorm2d on each sample alone (train-mode BN on a batch of one, bit for bit:
    ``F.instance_norm`` runs batch norm on the (1, N·C, H, W) reshape), sharing the BN's
    weight and bias."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.bn.weight, bias=self.bn.bias, eps=self.bn.eps)


@contextmanager
def _normalisation(model: nn.Module, bn: str) -> Iterator[None]:
    """BN layers normalise per sample (``per_sample``) or by running statistics (``eval``)
    for the duration; the module tree and train/eval flags are put back afterwards."""
    modes = {m: m.training for m in model.modules()}
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        if bn == "eval":
            model.eval()
        else:
            model.train()
            for parent in list(model.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.BatchNorm2d):
                        swapped.append((parent, name, child))
                        setattr(parent, name, _PerSampleNorm(child))
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        for m, training in modes.items():
            m.training = training


def _record(calls: list[LayerCall], handler: list):
    """A forward hook that records each call and hooks its output's gradient: kept in the
    call, or handed to ``handler[0]`` when the caller has set one by then."""

    def on_grad(call: LayerCall, g: torch.Tensor) -> None:
        call.grad = g
        if handler[0] is not None:
            handler[0](call)

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        (x,) = args
        if not x.requires_grad or not output.requires_grad:
            raise Unsupported(f"{type(module).__name__} input does not depend on the network input")
        if isinstance(module, nn.Linear) and x.dim() != 2:
            raise Unsupported("Linear on more than (batch, features)")
        # A hook registered now sees the gradient of this value even if a later in-place op
        # (ReLU(inplace=True)) overwrites it -- unless the value is a view, which the
        # in-place op rebases, dropping its hooks. So a plain reshape (F.instance_norm's
        # output) is hooked through the tensor it reshapes.
        base = output._base
        target = base if base is not None and _is_reshape_of(output, base) else output
        call = LayerCall(module, x, x._version, target, target._version)
        call.hook = target.register_hook(lambda g, call=call, shape=output.shape: on_grad(call, g.view(shape)))
        calls.append(call)

    return hook


def _is_reshape_of(view: torch.Tensor, base: torch.Tensor) -> bool:
    return view.numel() == base.numel() and view.is_contiguous() and base.is_contiguous()


def _norm_layer(module: nn.Module) -> nn.BatchNorm2d | None:
    if isinstance(module, _PerSampleNorm):
        return module.bn
    return module if isinstance(module, nn.BatchNorm2d) else None


class GradientMatrix:
    """The (N, P) per-sample gradient matrix: each parameter's gradient in a block of
    columns, in ``model.parameters()`` order; a conv weight's block is laid out
    (kh, kw, out, in), so that each kernel offset's product lands in contiguous columns
    (GradAlign sums over columns, so their order within a block does not matter to it).
    Pieces are written in order into their parameter's block; a layer called twice adds."""

    def __init__(self, model: nn.Module, n: int, like: torch.Tensor):
        params = self._params = list(model.parameters())
        sizes = [p.numel() for p in params]
        self.matrix = torch.empty(n, sum(sizes), dtype=like.dtype, device=like.device)
        self._blocks = {id(p): self.matrix[:, a - size : a] for p, size, a in zip(params, sizes, itertools.accumulate(sizes))}
        self._filled: dict[int, int] = {}  # columns of the block written by the current call
        self._adding: set[int] = set()  # parameters whose layer has been called before

    def write(self, param: torch.Tensor, piece: torch.Tensor) -> None:
        """The next ``piece`` (N, ...) of ``param``'s per-sample gradient, flattened."""
        key, block = id(param), self._blocks[id(param)]
        start = self._filled.get(key, 0)
        if start == block.shape[1]:  # a second call of the same layer
            start = 0
            self._adding.add(key)
        target = block[:, start : start + piece[0].numel()]
        piece = piece.reshape(target.shape)
        target.add_(piece) if key in self._adding else target.copy_(piece)
        self._filled[key] = start + target.shape[1]

    def finish(self) -> torch.Tensor:
        """The matrix, with zeros for parameters the loss does not reach."""
        for key, block in self._blocks.items():
            if key not in self._filled:
                block.zero_()
        return self.matrix

    def written(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, its (N, numel) columns) for each parameter the loss reached."""
        return ((p, self._blocks[id(p)]) for p in self._params if id(p) in self._filled)


class _Stream:
    """Hands each piece on as it comes, flattened to (N, columns), with its parameter: for a caller that only sums over columns and needs no matrix (each parameter
    is written once, possibly in several pieces)."""

    def __init__(self, consume: Callable[[torch.Tensor, torch.Tensor], None]):
        self.consume = consume

    def write(self, param: torch.Tensor, piece: torch.Tensor) -> None:
        if piece.dim() > 2:  # a view where it can be: this runs ~10 times per layer
            piece = piece.view(len(piece), -1) if piece.is_contiguous() else piece.reshape(len(piece), -1)
        self.consume(param, piece)


def _layer_gradients(call: LayerCall, out: GradientMatrix | _Stream, max_bytes: int) -> None:
    """Write one layer call's per-sample gradients into ``out``."""
    m, x, g = call.module, call.input, call.grad
    bn = _norm_layer(m)
    if bn is not None:
        if bn.weight is not None:
            if isinstance(m, _PerSampleNorm):
                x_hat = F.instance_norm(x, eps=bn.eps)
            else:
                x_hat = F.batch_norm(x, bn.running_mean, bn.running_var, training=False, eps=bn.eps)
            out.write(bn.weight, (g * x_hat).sum((2, 3)))
        if bn.bias is not None:
            out.write(bn.bias, g.sum((2, 3)))
    elif isinstance(m, nn.Linear):
        out.write(m.weight, torch.bmm(g.unsqueeze(2), x.unsqueeze(1)))
        if m.bias is not None:
            out.write(m.bias, g)
    else:
        _conv_weight_gradients(m, x, g, out, max_bytes)
        if m.bias is not None:
            out.write(m.bias, g.sum((2, 3)))


def _conv_weight_gradients(conv: nn.Conv2d, x: torch.Tensor, g: torch.Tensor, out: GradientMatrix | _Stream,
                           max_bytes: int) -> None:
    """Per-sample weight gradients: for each kernel offset (i, j), Σ over output positions
    of the output gradient times the input shifted by that offset.

    With stride 1 each shifted input is a plain slice of the flattened padded input, if the
    output gradient is padded to the input's width with zeros (the wrapped-around positions
    then count for nothing): one batched matmul per kernel offset, on views, with nothing
    else materialised. ``F.unfold`` would instead loop over the samples (one operator each)
    and copy every patch. Strided convolutions take :func:`_conv_weight_gradients_strided`."""
    if conv.stride != (1, 1):
        out.write(conv.weight, _conv_weight_gradients_strided(conv, x, g, max_bytes))
        return
    (kh, kw), (dh, dw), (ph, pw) = conv.kernel_size, conv.dilation, conv.padding
    n, o = len(x), g.shape[1]
    width = x.shape[3] + 2 * pw
    # One more zero row below, so that the last offset's slice stays inside the tensor.
    x = F.pad(x, (pw, pw, ph, ph + (kw > 1)))
    flat_x = x.flatten(2)
    rows, cols = g.shape[2], g.shape[3]
    flat_g = (F.pad(g, (0, width - cols)) if width > cols else g).reshape(n, o, rows * width)
    for i in range(kh):
        for j in range(kw):
            start = i * dh * width + j * dw
            shifted = flat_x[:, :, start : start + rows * width]  # (N, C, positions), a view
            out.write(conv.weight, torch.bmm(flat_g, shifted.transpose(1, 2)))


def _conv_weight_gradients_strided(conv: nn.Conv2d, x: torch.Tensor, g: torch.Tensor, max_bytes: int) -> torch.Tensor:
    """The general case, (N, kh, kw, out, in): the patches under the kernel as a strided view
    of the padded input, contracted with the output gradient by one einsum (which copies
    the patches), a few samples at a time within ``max_bytes``."""
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    patches = x.unfold(2, (kh - 1) * dh + 1, sh).unfold(3, (kw - 1) * dw + 1, sw)[..., ::dh, ::dw]
    n, per_sample = len(x), conv.weight.numel() * g.shape[2] * g.shape[3] * x.element_size()
    rows = max(1, max_bytes // per_sample)
    return torch.cat([torch.einsum("nohw,nchwij->nijoc", g[a : a + rows], patches[a : a + rows]) for a in range(0, n, rows)])


@contextmanager
def _traced_calls(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, bn: str,
                  handler_for: Callable[[list[LayerCall]], Callable[[LayerCall], None] | None] = lambda calls: None,
                  ) -> Iterator[list[LayerCall] | None]:
    """One batched forward and one backward to the input: every supported layer call with
    its input and output gradient (``grad`` None where the output does not reach the loss),
    or None when the closed forms do not cover the network. ``handler_for(calls)``, asked
    after the forward, may return a function that takes each call during the backward, as
    soon as its gradient is known (then nothing needs to hold it). Hooks and BN swaps are
    undone on exit."""
    if not supports(model):
        yield None
        return
    calls: list[LayerCall] = []
    handler: list = [None]
    with _normalisation(model, bn):
        handles = [m.register_forward_hook(_record(calls, handler)) for m in model.modules()
                   if isinstance(m, (*SUPPORTED, _PerSampleNorm)) and not (isinstance(m, nn.BatchNorm2d) and bn == "per_sample")]
        try:
            try:
                x = inputs.detach().requires_grad_(True)
                # Samples are independent, so the gradient of the summed loss at sample n is
                # the gradient of sample n's own loss.
                loss = F.cross_entropy(model(x), labels, reduction="sum")
            except Unsupported:
                calls.clear()
                yield None
                return
            if any(c.overwritten() for c in calls):
                calls.clear()
                yield None
                return
            handler[0] = handler_for(calls)
            torch.autograd.grad(loss, x)
            yield calls
        finally:
            for h in handles:
                h.remove()
            # A tensor hook refers (through its closure) to the call that holds the hooked
            # tensor: a cycle through autograd that Python's collector cannot see, which
            # would keep every cell's activations alive. Removing the hooks breaks it.
            for call in calls:
                if call.hook is not None:
                    call.hook.remove()
            calls.clear()


def _write_all(calls: list[LayerCall], out: GradientMatrix | _Stream, max_bytes: int) -> None:
    with torch.no_grad():
        for call in calls:
            if call.grad is not None:  # None: this output does not reach the loss
                _layer_gradients(call, out, max_bytes)


def per_sample_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, bn: str,
                         max_bytes: int = 256 * 2**20) -> torch.Tensor | None:
    """The (N, P) matrix of per-sample gradients of each sample's cross-entropy loss (layout:
    :class:`GradientMatrix`; zeros where the loss does not reach), or ``None`` when the
    network has a layer without a closed form. ``max_bytes`` bounds the copied patches of a
    strided convolution. The model's weights are not touched; no parameter gradient is
    formed."""
    with _traced_calls(model, inputs, labels, bn) as calls:
        if calls is None:
            return None
        out = GradientMatrix(model, len(labels), inputs)
        _write_all(calls, out, max_bytes)
        return out.finish()


def stream_per_sample_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, bn: str,
                                consume: Callable[[torch.Tensor, torch.Tensor], None], max_bytes: int = 256 * 2**20) -> bool:
    """The same per-sample gradients, handed to ``consume(parameter, piece)`` as
    (N, columns) pieces during the backward, layer by layer as each output gradient is
    known, never held together: for reductions over columns, which then work on small
    blocks instead of a matrix of N × P floats, while each layer's input and output
    gradient are freed as soon as the backward is done with them. The pieces come in no
    fixed column order. Parameters the loss does not reach give no piece (their columns
    would be zeros). A network that calls a layer twice (whose pieces must be added first)
    goes through the matrix, handed on a parameter at a time after the backward. False,
    with nothing consumed, when the network has a layer without a closed form."""
    matrix: GradientMatrix | None = None
    stream = _Stream(consume)

    def handler_for(calls: list[LayerCall]) -> Callable[[LayerCall], None] | None:
        nonlocal matrix
        layers = [_norm_layer(c.module) if _norm_layer(c.module) is not None else c.module for c in calls]
        owners = [id(p) for layer in layers for p in layer.parameters(recurse=False)]
        if len(owners) != len(set(owners)):
            matrix = GradientMatrix(model, len(labels), inputs)
            return None  # written after the backward, in forward order

        def write_now(call: LayerCall) -> None:
            with torch.no_grad():
                _layer_gradients(call, stream, max_bytes)
            call.input = call.output = call.grad = None  # what the backward is done with can go now

        return write_now

    with _traced_calls(model, inputs, labels, bn, handler_for) as calls:
        if calls is None:
            return False
        if matrix is not None:
            _write_all(calls, matrix, max_bytes)
            for param, block in matrix.written():
                consume(param, block)
        return True
