"""The FLOP floor of a training epoch: its matmul FLOPs over the machine's large-matmul rate.

Every layer with weights is one matrix product per example: a dense layer multiplies
its (1, n_in) input by the (n_in, n_out) weights; a 5×5 valid conv (im2col) multiplies
a (P, 25·C) patch matrix by the (25·C, F) filters, P being its output positions. With
a product of (p, k) by (k, n) costing 2·p·k·n FLOPs, one training example costs

    forward   2·p·k·n per layer            (z = a w + b)
    backward  2·p·k·n per layer            (∂C/∂w = aᵀ δ, BP4)
            + 2·p·k·n per layer but the first  (δ wᵀ, BP2; the input needs no δ)

Biases, activations, pooling, the cost and the update are elementwise and left out,
so the floor is a lower bound that no implementation reaches.
"""

Matmul = tuple[int, int, int]  # (p, k, n): a (p, k) by (k, n) product per example


def dense_matmuls(sizes) -> list[Matmul]:
    """The products of a fully connected net of layer widths ``sizes`` (input first)."""
    return [(1, n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def arch_matmuls(arch, in_shape=(28, 28, 1)) -> list[Matmul]:
    """The products of a `nnjax.convnet` architecture (5×5 valid convs) on images of
    ``in_shape``."""
    side, channels, flat = in_shape[0], in_shape[2], None
    out = []
    for kind, *args in arch:
        if kind == "conv":
            side -= 4
            out.append((side * side, 25 * channels, args[0]))
            channels = args[0]
        elif kind == "pool":
            side //= args[0]
        elif kind == "flatten":
            flat = side * side * channels
        elif kind in ("dense", "softmax"):
            out.append((1, flat, args[0]))
            flat = args[0]
    return out


def training_flops(matmuls: list[Matmul]) -> int:
    """Matmul FLOPs of one example's forward and backward pass (see the module docstring)."""
    return sum(2 * p * k * n * (2 if i == 0 else 3) for i, (p, k, n) in enumerate(matmuls))

