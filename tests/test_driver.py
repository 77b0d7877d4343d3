"""The one driver, `train.fit`: pieces composed alone, the η schedule piece, a custom piece,
and members (an ensemble, a sweep) through the same loop with checkpoints and resume."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import backprop, checkpoint, init, monitor, network, optim, sweep, train
from nnjax.network import Network

NET = Network((6, 5, 3))


def toy(n=40):
    x = jax.random.uniform(jax.random.key(0), (n, 6))
    return x, jnp.argmax(x[:, :3], axis=1).astype(jnp.int32)


def single(eta=1.0, seed=0):
    opt = optim.sgd(eta)
    params = init.init_params(jax.random.key(seed), NET.sizes)
    return train.make_epoch(backprop.make_grad(NET), opt, 10), train.State(params, opt.init(params),
                                                                           jax.random.key(1))


def test_fit_without_pieces_counts_epochs_and_times_them():
    program, state = single()
    state, history = train.fit(program, state, toy(), epochs=3)
    assert int(state.epoch) == 3 and history["epoch"] == [0, 1, 2] and len(history["seconds"]) == 3


def test_a_custom_piece_sees_every_epoch_and_can_stop_the_run():
    class StopAtTwo(train.Piece):
        def measure(self, run):
            run.record["norm"] = float(jnp.linalg.norm(run.state.params[0]["w"]))

        def after(self, run):
            run.stop = run.record["epoch"] == 1

    program, state = single()
    state, history = train.fit(program, state, toy(), epochs=5, pieces=[StopAtTwo()])
    assert history["epoch"] == [0, 1] and len(history["norm"]) == 2 and int(state.epoch) == 2


def test_evaluate_alone_matches_network_evaluate():
    program, state = single()
    x, y = toy()
    state, history = train.fit(program, state, (x, y), epochs=1,
                               pieces=[monitor.Evaluate(partial(network.evaluate, net=NET), (x,
                                                                                             y))])
    correct, cost = network.evaluate(state.params, x, y, NET)
    assert history["evaluation_accuracy"] == [int(correct)] and history["evaluation_cost"] == [
        float(cost)]


def test_eta_schedule_halves_eta_and_ends_at_the_floor():
    """Zero gradients: accuracy never improves, so η halves after every `after` epochs until
    η₀/8."""
    opt = optim.sgd(1.0)
    params = init.init_params(jax.random.key(0), NET.sizes)
    program = train.make_epoch(lambda p, x, y: jax.tree.map(jnp.zeros_like, p), opt, 10)
    state = train.State(params, opt.init(params), jax.random.key(1), extra=monitor.counters())
    evaluate = monitor.Evaluate(partial(network.evaluate, net=NET), toy())
    state, history = train.fit(program, state, toy(), epochs=50,
                               pieces=[evaluate, monitor.EtaSchedule(2, min_fraction=1 / 8)])
    # no new best: epoch 0 is the best
    assert history["learning_rate"] == [1.0] * 3 + [0.5] * 2 + [0.25] * 2
    assert bool(state.extra["stopped"]) and int(state.extra["changed_at"]) == 7


def test_schedule_and_early_stopping_need_evaluation_data():
    program, state = single()
    for piece in (monitor.EtaSchedule(2), monitor.EarlyStopping(2)):
        with pytest.raises(ValueError, match="pass evaluation_data"):
            train.fit(program, state, toy(), epochs=1, pieces=[piece])


def test_members_and_resume_through_the_same_fit(tmp_path):
    """A two-member sweep, checkpointed and resumed, ends where an uninterrupted one does."""
    x, y = toy()
    opt = optim.sgd(0.5)
    inits = [init.init_params(k, NET.sizes) for k in jax.random.split(jax.random.key(3), 2)]
    state = sweep.init(sweep.stack(inits), opt, {"learning_rate": jnp.array([0.5, 2.0])},
                       jax.random.split(jax.random.key(4), 2))
    program = train.make_epoch(backprop.make_grad(NET), opt, 10, members=True)
    evaluate = partial(network.evaluate, net=NET)

    def pieces(resume):
        return [monitor.Evaluate(evaluate, (x, y), members=True),
                checkpoint.Checkpoints(tmp_path, resume=resume)]

    whole, h_whole = train.fit(program, state, (x, y), epochs=3,
                               pieces=[monitor.Evaluate(evaluate, (x, y), members=True)])
    train.fit(program, state, (x, y), epochs=1, pieces=pieces(False))
    resumed, h_resumed = train.fit(program, state, (x, y), epochs=3, pieces=pieces(True))
    assert checkpoint.tree_digest(resumed.params) == checkpoint.tree_digest(whole.params)
    assert h_resumed["evaluation_accuracy"] == h_whole["evaluation_accuracy"]
    assert len(h_whole["evaluation_accuracy"][0]) == 2  # one value per member
    for i, start in enumerate(inits):  # member i is the network trained alone by the same driver
        one = optim.sgd([0.5, 2.0][i])
        alone, _ = train.fit(train.make_epoch(backprop.make_grad(NET), one, 10),
                             train.State(start, one.init(start), state.key[i]), (x, y), epochs=3)
        np.testing.assert_allclose(sweep.member(whole.params, i)[0]["w"], alone.params[0]["w"],
                                   rtol=1e-5, atol=1e-6)


def test_ctrl_c_in_on_epoch_keeps_the_finished_epochs(tmp_path):
    program, state = single()

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(train.Interrupted) as stop:
        train.fit(program, state, toy(), epochs=4, on_epoch=interrupt,
                  pieces=[checkpoint.Checkpoints(tmp_path)])
    assert stop.value.history["epoch"] == [0
                                           ,
                                           1] and stop.value.checkpoint.name == "epoch-000002.ckpt"
