"""graphbp: backpropagation as a framework you can see and extend.

A network is a NetworkX DAG of op nodes; each op is a plugin with a forward and a
vector-Jacobian product; one generic traversal applies the chain rule.
"""

from graphbp.builder import Builder as Builder
from graphbp.builder import Value as Value
from graphbp.builders import diamond_chain as diamond_chain
from graphbp.builders import mlp as mlp
from graphbp.builders import seed_network as seed_network
from graphbp.chain import ChainRule as ChainRule
from graphbp.chain import Cost as Cost
from graphbp.chain import chain_rule as chain_rule
from graphbp.chain import explain as explain
from graphbp.diagram import write_diagram as write_diagram

# graphbp.display sets how Jupyter draws a Network (graphbp.graph cannot import it)
from graphbp.display import network_bundle as _network_bundle  # noqa: F401
from graphbp.errors import BackendNotInstalledError as BackendNotInstalledError
from graphbp.errors import GradientCheckError as GradientCheckError
from graphbp.errors import GraphbpError as GraphbpError
from graphbp.errors import GraphError as GraphError
from graphbp.errors import GraphFileError as GraphFileError
from graphbp.errors import GraphvizError as GraphvizError
from graphbp.errors import InputError as InputError
from graphbp.errors import NonFiniteError as NonFiniteError
from graphbp.errors import PluginError as PluginError
from graphbp.errors import TransformError as TransformError
from graphbp.graph import Network as Network
from graphbp.jax_import import from_jax as from_jax
from graphbp.model import Model as Model
from graphbp.model import load as load
from graphbp.op import Op as Op
from graphbp.op import sum_to as sum_to
from graphbp.program import Program as Program
from graphbp.registry import backends as backends
from graphbp.registry import get_backend as get_backend
from graphbp.registry import get_op as get_op
from graphbp.registry import ops as ops
from graphbp.registry import register_op as register_op
from graphbp.render import render as render
from graphbp.train import train as train

__version__ = "0.1.0"

__all__ = [
    "BackendNotInstalledError",
    "Builder",
    "ChainRule",
    "Cost",
    "GradientCheckError",
    "GraphError",
    "GraphFileError",
    "GraphbpError",
    "GraphvizError",
    "InputError",
    "Model",
    "Network",
    "NonFiniteError",
    "Op",
    "PluginError",
    "Program",
    "TransformError",
    "Value",
    "backends",
    "chain_rule",
    "diamond_chain",
    "explain",
    "from_jax",
    "get_backend",
    "get_op",
    "load",
    "mlp",
    "ops",
    "register_op",
    "render",
    "seed_network",
    "sum_to",
    "train",
    "write_diagram",
]
