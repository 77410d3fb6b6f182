"""Short builders that return plain nx.DiGraph networks following the graph schema."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx


def mlp(
    sizes: Sequence[int],
    activation: str = "sigmoid",
    loss: str = "sse",
) -> nx.DiGraph:
    """A fully connected network: the textbook seed for ``sizes=(n_in, h, h, n_out)``.

    Layer k computes ``z_k = affine(h_{k-1}, W_k, b_k)`` and ``h_k = activation(z_k)``; the last
    layer is linear and named ``yhat``; the loss node ``L = loss(yhat, y)``. Inputs are ``x``
    and ``y`` with a batch axis of any size.

    Args:
        sizes: widths of the input, each hidden layer and the output.
        activation: the op applied after every hidden layer.
        loss: the loss op comparing ``yhat`` with ``y`` (``sse``, ``mse``,
            ``softmax_cross_entropy``).

    Returns:
        The graph, with ``graph["loss"] = "L"`` and ``graph["output"] = "yhat"``.
    """
    g = nx.DiGraph(loss="L", output="yhat")
    g.add_node("x", op="input", shape=(None, sizes[0]))
    g.add_node("y", op="input", shape=(None, sizes[-1]))
    prev = "x"
    layers = len(sizes) - 1
    for k in range(1, layers + 1):
        w, b = f"W{k}", f"b{k}"
        g.add_node(w, op="param", shape=(sizes[k - 1], sizes[k]))
        g.add_node(b, op="param", shape=(sizes[k],))
        z = f"z{k}" if k < layers else "yhat"
        g.add_node(z, op="affine")
        g.add_edge(prev, z, arg=0)
        g.add_edge(w, z, arg=1)
        g.add_edge(b, z, arg=2)
        if k < layers:
            h = f"h{k}"
            g.add_node(h, op=activation)
            g.add_edge(z, h)
            prev = h
    g.add_node("L", op=loss)
    g.add_edge("yhat", "L", arg=0)
    g.add_edge("y", "L", arg=1)
    return g


def seed_network(n_in: int, hidden: int, n_out: int = 1) -> nx.DiGraph:
    """The textbook network: h1 = σ(x·W1+b1), h2 = σ(h1·W2+b2), ŷ = h2·W3+b3, L = Σ‖y−ŷ‖²."""
    return mlp((n_in, hidden, hidden, n_out), activation="sigmoid", loss="sse")
