"""Chapter 1's network trained data-parallel over every device (`nnjax.parallel`, docs/scale.md).

    python -m experiments.parallel [--quick] [--epochs 30] [--batch-size 10] [--eta 3.0]
        [--seed 0] [--gradient backprop|autodiff] [--data-dir DIR]
        [--coordinator HOST:PORT --num-processes N --process-id I]

Trains [784, 30, 10] (sigmoid, quadratic cost, N(0, 1) weights, η = 3.0, as 1a) with each
mini-batch split over a one-axis mesh of all devices, and prints the test accuracy after
each epoch. The mini-batch size must be a multiple of the number of devices (10 fits 1, 2,
5 or 10 devices; use 16 on 8). With the three multi-host options every process calls
``jax.distributed.initialize`` first, the mesh spans all processes' devices, and only
process 0 prints. Writes no files. ``--quick``: one epoch on the first 5,000 images.
"""

import argparse
from functools import partial

import jax

from experiments import command_line, common, progress
from nnjax import data, guard, init, monitor, network, optim, parallel, train
from nnjax.network import Network


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one epoch on the first 5,000 training "
                                                        "images")
    p.add_argument("--epochs", type=command_line.positive_int, default=30, help="epochs (default "
                                                                                "30)")
    p.add_argument("--batch-size", type=command_line.positive_int, default=10,
                   help="the whole mini-batch m, split over the devices (default 10)")
    p.add_argument("--eta", type=float, default=3.0, help="learning rate η (default 3.0)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--gradient", choices=["backprop", "autodiff"], default="backprop",
                   help="gradient method")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    p.add_argument("--coordinator", default=None, help="multi-host: process 0's HOST:PORT, the "
                                                       "same in every process")
    p.add_argument("--num-processes", type=command_line.positive_int, default=None,
                   help="multi-host: number of processes")
    p.add_argument("--process-id", type=int, default=None, help="multi-host: this process's index, "
                                                                "0 … N−1")
    return p


def main(argv=None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    multi_host = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in multi_host):
        if None in multi_host:
            p.error("multi-host needs all three of --coordinator, --num-processes and --process-id")
        jax.distributed.initialize(coordinator_address=args.coordinator,
                                   num_processes=args.num_processes, process_id=args.process_id)
    mesh = parallel.mesh()
    if args.batch_size % mesh.size:
        p.error(f"--batch-size {args.batch_size} does not split over {mesh.size} devices: "
                f"use a multiple of {mesh.size}")
    mnist = data.load_mnist(args.data_dir)
    n = 5000 if args.quick else mnist.training.x.shape[0]
    epochs = 1 if args.quick else args.epochs
    net = Network((784, 30, 10))
    k_init, k_train = jax.random.split(jax.random.key(args.seed))
    params = init.init_params(k_init, net.sizes, init.large)
    show = None
    if jax.process_index() == 0:
        print(f"{mesh.size} {jax.devices()[0].platform} device(s) in {jax.process_count()} "
              f"process(es): mini-batch {args.batch_size} = {mesh.size} × "
              f"{args.batch_size // mesh.size}", flush=True)
        show = progress.progress_printer("parallel", epochs, len(mnist.test.y))
    opt = optim.sgd(args.eta)
    program = train.make_epoch(parallel.data_parallel(common.gradient_fn(net, args.gradient), mesh),
                               opt, args.batch_size)
    _, history = train.fit(program, train.State(params, opt.init(params), k_train),
                           (mnist.training.x[:n], mnist.training.y[:n]), epochs=epochs,
                           on_epoch=show, pieces=[monitor.Evaluate(partial(network.evaluate,
                               net=net), mnist.test), guard.Guard()])
    return history


if __name__ == "__main__":
    main()
