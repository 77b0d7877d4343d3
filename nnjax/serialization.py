"""Save and load a trained fully connected network without pickle (ch3, network2.py's save/load).

A directory holds ``network.json`` (the `Network` description: sizes, activation,
output and cost names; the parameter dtype; free-form JSON metadata) and
``params.msgpack`` (the parameter pytree, `flax.serialization.to_bytes`), which stores
arrays exactly and runs no code on load.
"""

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from nnjax import activations, costs, init
from nnjax.network import Network, Params, check_params

FORMAT = "nnjax-network"
VERSION = 1
DESCRIPTION, PARAMS = "network.json", "params.msgpack"


def describe(net: Network) -> dict[str, Any]:
    """The JSON-ready description of a network; fails for activations or costs without a name
    lookup."""
    for kind, obj, lookup in (("activation", net.activation, activations.get), ("output",
        net.output, activations.get),
                              ("cost", net.cost, costs.get)):
        try:
            known = lookup(obj.name) is obj
        except ValueError:
            known = False
        if not known:
            raise ValueError(f"cannot save {kind} {obj.name!r}: only the built-in ones (found by "
                             f"name with nnjax.{'costs' if kind == 'cost' else 'activations'}.get) "
                             "can be restored")
    return {"sizes": list(net.sizes), "activation": net.activation.name, "output": net.output.name,
            "cost": net.cost.name}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save(directory: str | os.PathLike, params: Params, net: Network,
         metadata: dict | None = None) -> Path:
    """Write ``params`` and ``net`` into ``directory`` (created if needed); return the directory."""
    check_params(params, net)
    dtypes = {str(jnp.asarray(leaf).dtype) for layer in params for leaf in layer.values()}
    if len(dtypes) != 1:
        raise ValueError(f"all parameters must share one dtype to be saved, got {sorted(dtypes)}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    description = {"format": FORMAT, "version": VERSION, **describe(net), "dtype": dtypes.pop(),
                   "metadata": metadata or {}}
    _write(out / PARAMS, serialization.to_bytes(params))
    _write(out / DESCRIPTION, json.dumps(description, indent=1).encode())
    return out


def load(directory: str | os.PathLike) -> tuple[Params, Network, dict]:
    """Read a network saved by `save`: (params, net, metadata)."""
    d = Path(directory)
    missing = [name for name in (DESCRIPTION, PARAMS) if not (d / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{d} is not a saved network: missing {missing} (write one with "
                                "nnjax.serialization.save)")
    description = json.loads((d / DESCRIPTION).read_text())
    if description.get("format") != FORMAT or description.get("version") != VERSION:
        raise ValueError(f"{d / DESCRIPTION}: expected format {FORMAT!r} version {VERSION}, got "
                         f"{description.get('format')!r} version {description.get('version')!r}")
    net = Network(tuple(description["sizes"]), activations.get(description["activation"]),
                  activations.get(description["output"]), costs.get(description["cost"]))
    # a zero template gives from_bytes the pytree structure and dtype (zeros ignores the key)
    template = init.init_params(jax.random.key(0), net.sizes, init.zeros,
                                dtype=jnp.dtype(description["dtype"]))
    try:
        params = serialization.from_bytes(template, (d / PARAMS).read_bytes())
    except ValueError as e:
        raise ValueError(f"{d / PARAMS} does not hold parameters for sizes {net.sizes}: {e}") from e
    params = tuple({k: jnp.asarray(v) for k, v in layer.items()} for layer in params)
    check_params(params, net)
    return params, net, description["metadata"]
