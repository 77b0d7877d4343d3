"""The book's update rules as optax gradient transformations (ch1; ch3 extends them).

Chapter 1's mini-batch stochastic gradient descent is
    w → w′ = w − (η/m) Σ_x ∂C_x/∂w,   b → b′ = b − (η/m) Σ_x ∂C_x/∂b   (ch1, eqs. 20–21),
i.e. a step of −η along the mean gradient that `nnjax.backprop.make_grad` and
`nnjax.autodiff.make_grad` return. That is exactly ``optax.sgd(η)``.
"""

import optax


def sgd(eta: float) -> optax.GradientTransformation:
    """Plain mini-batch SGD, w → w − η·(mean gradient) (ch1, eq. 20).

    η is injected as a hyperparameter (it lives in the optimiser state), so it can be
    an array: a sweep over η then vmaps one compiled program instead of recompiling.
    """
    if not eta > 0:
        raise ValueError(f"the learning rate eta must be positive, got {eta!r}")
    return optax.inject_hyperparams(optax.sgd)(learning_rate=eta)
