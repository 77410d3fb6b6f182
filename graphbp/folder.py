"""A network's folder: ``network.json``, with ``params.npz`` and ``inputs.npz`` beside it.

``graphbp import`` writes all three (the parameters and the example inputs the function was
traced with); a ``graphbp train`` folder holds ``network.json`` and ``params.npz`` among its
other files. Every command that takes a network file takes such a folder too.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphbp.errors import GraphFileError

if TYPE_CHECKING:
    import numpy as np

    from graphbp.graph import Network

NETWORK = "network.json"
PARAMS = "params.npz"
INPUTS = "inputs.npz"
IMPORT_NAMES = frozenset({NETWORK, PARAMS, INPUTS})
"""The files ``graphbp import`` writes into its folder."""


def network_file(path: Path) -> Path:
    """The network file ``path`` names: the file itself, or a folder's ``network.json``.

    Raises:
        GraphFileError: ``path`` is a folder without ``network.json``.
    """
    if not path.is_dir():
        return path  # a missing or unreadable file is reported where it is read
    file = path / NETWORK
    if not os.path.lexists(file):
        raise GraphFileError(
            f"{path}: a folder without {NETWORK}; give a network's JSON file, or a folder "
            "that graphbp import or graphbp train wrote"
        )
    return file


def read_network(path: Path) -> Network:
    """The network in ``path``: a node-link JSON file, or a folder holding ``network.json``.

    Raises:
        GraphFileError: the file is missing or malformed, naming it.
        GraphError: the network breaks the schema.
    """
    from graphbp.graph import Network

    return Network.from_json(network_file(path))


def folder_values(
    path: Path, net: Network
) -> tuple[
    dict[Hashable, np.ndarray[Any, Any]] | None, dict[Hashable, np.ndarray[Any, Any]] | None
]:
    """The parameters and inputs a network's folder holds for ``net``.

    Args:
        path: the folder (a file: it holds no values).
        net: the folder's network: the arrays must fit its parameters and inputs.

    Returns:
        ``params.npz`` and ``inputs.npz`` by node name, each None where the file is absent.

    Raises:
        GraphFileError: a file is malformed or does not fit ``net``, naming it and the array.
    """
    from graphbp.npz import read_npz

    if not path.is_dir():
        return None, None
    fix = "import (or train) the network again"
    owner = f"{path / NETWORK}'s network"

    def read(name: str, nodes: list[Hashable], kinds: str, finite: bool) -> Any:
        file = path / name
        if not os.path.lexists(file):
            return None
        by_name = {str(n): n for n in nodes}
        shapes: Mapping[str, Any] = {str(n): net.shapes.get(n) for n in nodes}
        arrays = read_npz(file, shapes, fix=fix, kinds=kinds, finite=finite, owner=owner)
        return {by_name[k]: v for k, v in arrays.items()}

    # an input may be NaN or infinite: a constant of the function that JSON cannot hold
    return read(PARAMS, list(net.params), "fiu", True), read(
        INPUTS, list(net.inputs), "biuf", False
    )
