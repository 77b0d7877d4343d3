"""nnjax: Michael Nielsen's *Neural Networks and Deep Learning* as pure-functional JAX.

Parameters are plain pytrees, every function is pure and takes its PRNG key explicitly.
The modules follow the book: `activations`, `costs` and `init` (ch1, ch3), `network`
(feedforward, ch1), `backprop` (BP1–BP4 by hand, ch2) beside `autodiff` (jax.grad),
`optim` (the update rules as optax transformations), `train` (compiled epochs) and
`data` (MNIST with the book's split).
"""

__version__ = "0.1.0"
