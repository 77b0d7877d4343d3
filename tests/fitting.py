"""`train.fit` composed from its pieces as the tests use it: one network, the usual options.

Imported by the tests (tests/ is on sys.path), so each keeps what it checks in a line.
"""

from nnjax import checkpoint, guard, monitor, train


def fit(params, grad_fn, optimizer, training_data, *, epochs, batch_size, key, evaluate=None,
        evaluation_data=None, monitor_training=False, shuffle=True, stochastic=False, on_epoch=None,
        penalty=None, stop_after=None, halve_eta_after=None, min_eta_fraction=1 / 128,
        checkpoint_dir=None, checkpoint_every=1, checkpoint_config=None, resume=False,
        nan_guard=True):
    """(final params, history) of one network; penalty: ``(params, size) -> term``."""
    pieces = []
    if evaluate is not None:
        term = penalty and (lambda p, lmbda, size: penalty(p, size))
        pieces.append(monitor.Evaluate(evaluate, evaluation_data, monitor_training, term,
                                       lmbda=0.0))
    elif evaluation_data is not None or monitor_training:
        raise ValueError("monitoring needs an evaluate function, e.g. partial(network.evaluate, "
                         "net=net)")
    pieces += [guard.Guard()] * nan_guard
    pieces += [monitor.EarlyStopping(stop_after)] if stop_after is not None else []
    pieces += [monitor.EtaSchedule(halve_eta_after,
                                   min_eta_fraction)] if halve_eta_after is not None else []
    if checkpoint_dir is not None:
        pieces.append(checkpoint.Checkpoints(checkpoint_dir, checkpoint_every, resume,
                                             checkpoint_config))
    program = train.make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic)
    state = train.State(params, optimizer.init(params), key, extra=monitor.counters())
    state, history = train.fit(program, state, training_data, epochs=epochs, pieces=pieces,
                               on_epoch=on_epoch)
    return state.params, history


def load_checkpoint(directory, params, optimizer, key):
    """The newest checkpoint `fit` wrote in ``directory`` (None if none), restored like
    ``params``."""
    like = train.State(params, optimizer.init(params), key, extra=monitor.counters())
    return checkpoint.restore(directory, checkpoint.layout(like))
