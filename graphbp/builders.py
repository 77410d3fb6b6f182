"""Short builders that return plain nx.DiGraph networks following the graph schema."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from graphbp.errors import GraphError


def mlp(
    sizes: Sequence[int],
    activation: str = "sigmoid",
    loss: str = "sse",
) -> nx.DiGraph:
    """A fully connected network: the textbook seed for ``sizes=(n_in, h, h, n_out)``.

    Hidden layer k is one node, ``h_k = dense(h_{k-1}, W_k, b_k)``, computing
    ``activation(h_{k-1}·W_k + b_k)``; the last layer is linear, ``yhat = affine(h, W, b)``;
    the loss node is ``L = loss(yhat, y)``. Inputs are ``x`` and ``y`` with a batch axis of any
    size. One node per layer keeps the chain rule as the textbook writes it:
    ∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1. Layer k's nodes (``W_k``, ``b_k`` and
    ``h_k``, or ``yhat`` for the last) have the scope ``"layer<k>"``, which drawings show as
    a cluster, or fold when layers repeat.

    Args:
        sizes: widths of the input, each hidden layer and the output.
        activation: the one-operand op applied in every hidden layer.
        loss: the loss op comparing ``yhat`` with ``y`` (``sse``, ``mse``,
            ``softmax_cross_entropy``).

    Returns:
        The graph, with ``graph["loss"] = "L"`` and ``graph["output"] = "yhat"``. Building it
        allocates no parameter: ``Network(graph)`` checks that every width can be held.

    Raises:
        GraphError: fewer than two widths.
    """
    if len(sizes) < 2:
        raise GraphError(
            f"mlp needs the input and output widths at least, e.g. sizes=(10, 16, 1); got "
            f"{list(sizes)}"
        )
    g = nx.DiGraph(loss="L", output="yhat")
    g.add_node("x", op="input", shape=(None, sizes[0]))
    g.add_node("y", op="input", shape=(None, sizes[-1]))
    prev = "x"
    layers = len(sizes) - 1
    for k in range(1, layers + 1):
        w, b, scope = f"W{k}", f"b{k}", f"layer{k}"
        g.add_node(w, op="param", shape=(sizes[k - 1], sizes[k]), scope=scope)
        g.add_node(b, op="param", shape=(sizes[k],), scope=scope)
        if k < layers:
            node = f"h{k}"
            g.add_node(node, op="dense", activation=activation, scope=scope)
        else:
            node = "yhat"
            g.add_node(node, op="affine", scope=scope)
        g.add_edge(prev, node, arg=0)
        g.add_edge(w, node, arg=1)
        g.add_edge(b, node, arg=2)
        prev = node
    g.add_node("L", op=loss)
    g.add_edge("yhat", "L", arg=0)
    g.add_edge("y", "L", arg=1)
    return g


def seed_network(n_in: int, hidden: int, n_out: int = 1) -> nx.DiGraph:
    """The textbook network: h1 = σ(x·W1+b1), h2 = σ(h1·W2+b2), ŷ = h2·W3+b3, L = Σ‖y−ŷ‖²."""
    return mlp((n_in, hidden, hidden, n_out), activation="sigmoid", loss="sse")


def diamond_chain(k: int) -> nx.DiGraph:
    """A parameter ``w`` through ``k`` diamonds: each value fans out to two ops that rejoin.

    Diamond i computes ``a_i = tanh(v)``, ``b_i = sigmoid(v)``, ``v_i = a_i + b_i``; the
    loss is ``L = sum(v_k)``. Paths from the loss to ``w`` number 2^k and expanding them one
    by one costs (2k + 1)·2^k local derivatives, while backprop evaluates 4k + 1: the case
    that shows why reuse matters.
    """
    g = nx.DiGraph(loss="L")
    g.add_node("w", op="param", shape=(3,), init="normal")
    prev = "w"
    for i in range(1, k + 1):
        a, b, v = f"a{i}", f"b{i}", f"v{i}"
        g.add_node(a, op="tanh")
        g.add_node(b, op="sigmoid")
        g.add_node(v, op="add")
        g.add_edge(prev, a)
        g.add_edge(prev, b)
        g.add_edge(a, v, arg=0)
        g.add_edge(b, v, arg=1)
        prev = v
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return g
