"""PyTorch twins of the benchmarked networks, trained by PyTorch's ordinary eager loop.

Used by `experiments.bench` as the "PyTorch eager" row: the same network, cost, update
rule and mini-batch as nnjax, one ``loss.backward(); opt.step()`` per mini-batch in a
fixed order. A twin returns the output layer's weighted input z; the cost applies the
output activation:

- quadratic (ch1): C = (1/2m) Σ_x ||σ(z) − y||²,
- cross-entropy (ch3): C = −(1/m) Σ_x Σ_j [y_j ln σ(z_j) + (1 − y_j) ln(1 − σ(z_j))],
- log-likelihood (ch6): C = −(1/m) Σ_x ln softmax(z)_y.

L2 is ``torch.optim.SGD``'s weight decay on the weights only, with the book's
scalings (decay ηλ/n per step in network2.py, ηλm/n in network3.py). Dropout (6k) is
``torch.nn.Dropout``, which rescales by 1/(1 − p) in training where network3.py
rescales at test time: the same work per step.
Needs PyTorch (``pip install 'nnjax[bench]'``, the CPU wheel).
"""

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}


def fc_net(sizes, activation: str = "sigmoid") -> torch.nn.Sequential:
    """A fully connected net of layer widths ``sizes``; σ between layers, z at the output."""
    mods = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        mods += [torch.nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
    return torch.nn.Sequential(*mods[:-1])


def torch_net(convs, fc, activation: str, dropout: float = 0.0) -> torch.nn.Sequential:
    """A network3 net (NCHW): [conv 5×5 → max-pool 2 → σ]*, [dropout → FC → σ]*, dropout → softmax
    layer (z)."""
    act = ACTIVATIONS[activation]
    drop = [torch.nn.Dropout(dropout)] if dropout else []
    mods, c, side = [], 1, 28
    for f in convs:
        mods += [torch.nn.Conv2d(c, f, 5), torch.nn.MaxPool2d(2), act()]
        c, side = f, (side - 4) // 2
    mods.append(torch.nn.Flatten())
    n = c * side * side
    for h in fc:
        mods += [*drop, torch.nn.Linear(n, h), act()]
        n = h
    mods += [*drop, torch.nn.Linear(n, 10)]
    return torch.nn.Sequential(*mods)


def cost(name: str):
    """``loss(z, y)`` for integer labels y: the named cost as the module docstring gives it."""
    def quadratic(z, y):
        return 0.5 * (torch.sigmoid(z) - F.one_hot(y, z.shape[1])).pow(2).sum(1).mean()

    def cross_entropy(z, y):
        return F.binary_cross_entropy_with_logits(z, F.one_hot(y, z.shape[1]).float(),
                                                  reduction="sum") / len(y)

    return {"quadratic": quadratic, "cross_entropy": cross_entropy,
            "log_likelihood": F.cross_entropy}[name]


def epoch_fn(model: torch.nn.Module, loss, x: np.ndarray, y: np.ndarray, eta: float, decay: float,
             batch_size: int = 10, device: str = "cpu"):
    """A function running one eager SGD epoch of ``model`` over (x, y) in fixed order.

    x: inputs as the model takes them (NCHW images or flat rows); decay: the weight
    decay on the weights (biases are not decayed); device: where model and data live
    (the epoch waits for a GPU to finish).
    """
    model = model.to(device)
    params = dict(model.named_parameters())
    weights = [p for name, p in params.items() if name.endswith("weight")]
    biases = [p for name, p in params.items() if name.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": decay},
                           {"params": biases, "weight_decay": 0.0}],
                          lr=eta)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y.astype(
        np.int64)).to(device)

    def epoch():
        for i in range(0, len(xt) - batch_size + 1, batch_size):
            opt.zero_grad(set_to_none=True)
            loss(model(xt[i:i + batch_size]), yt[i:i + batch_size]).backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    return epoch
