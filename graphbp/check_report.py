"""What a gradient check compared, and for a network checked edge by edge
(``check_network(net, report=True)``), every op's rule per operand edge: drawn, written and
named.

Example:
    >>> report = gb.testing.check_network(net, report=True)
    >>> report.wrong_ops                     # {'sigmoid': ('h2',)}
    >>> report.write("check.html")           # every edge coloured by its verdict
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from graphbp.chain import Edge
from graphbp.errors import InputError, show
from graphbp.render import Marks

if TYPE_CHECKING:
    from graphbp.graph import Network

Status = Literal["agree", "wrong", "unchecked"]
"""An edge's verdict: its op's vjp for that operand agrees with the oracles, disagrees, or
could not be judged (a gradient-free operand, a non-smooth point, values not finite, ...)."""

NO_GRADIENT = 'carrying no gradient (declared "0")'
NOT_SMOOTH = "at a kink, where the forward is not smooth"
NOT_FINITE = "where values are not finite"
FAILED = "whose forward failed"
"""Why an edge is unchecked (``EdgeCheck.reason``), as ``CheckReport.unjudged`` says it."""


@dataclass(frozen=True)
class EdgeCheck:
    """The check of one operand edge: the consumer's vjp for that operand at the network's
    values against float64 central differences of its forward (and ``jax.vjp`` of it).

    Attributes:
        status: "agree", "wrong" or "unchecked".
        differences: the worst relative error against central differences (None if not
            compared), as ``CheckReport.worst`` measures it.
        autodiff: the largest difference from ``jax.vjp``, relative to its largest entry
            (None: jax is not installed, or the op does not run on it).
        note: where it disagrees, or why it is unchecked ("" when it agrees).
        culprit: for a wrong edge whose node's attributes name an op that fails its own
            check (dense's ``activation``), that attribute and op: the rule to fix.
        reason: for an unchecked edge, why, one of ``NO_GRADIENT``, ``NOT_SMOOTH``,
            ``NOT_FINITE``, ``FAILED`` ("" otherwise).
    """

    status: Status
    differences: float | None = None
    autodiff: float | None = None
    note: str = ""
    culprit: tuple[str, str] | None = None
    reason: str = ""


@dataclass
class CheckReport:
    """What a gradient check compared: per checked quantity, the worst relative error; for
    a network checked with ``report=True``, also the verdict on every operand edge.

    Attributes:
        subject: what was checked ("network", "op 'sigmoid'", ...).
        backend: the backend it ran on.
        worst: the worst relative error per checked quantity (parameter, example operand).
        compared: how many values were compared.
        net: the network (a report of ``check_network(..., report=True)``), else None.
        edges: the verdict on each operand edge of ``net``, in network order.
        failed: parameters (``str(name)``, as in ``worst``) whose gradient disagrees with
            central differences, with the message ``check_network`` would have raised; or
            ``"gradient"`` if backprop itself failed (a rule that raises). Report mode only.
    """

    subject: str
    backend: str
    worst: dict[str, float] = field(default_factory=dict)
    compared: int = 0
    net: Network | None = None
    edges: dict[Edge, EdgeCheck] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over everything compared."""
        return max(self.worst.values(), default=0.0)

    @property
    def wrong(self) -> dict[Edge, EdgeCheck]:
        """The edges whose rule disagrees with an oracle."""
        return {e: c for e, c in self.edges.items() if c.status == "wrong"}

    @property
    def wrong_ops(self) -> dict[str, tuple[Hashable, ...]]:
        """The ops whose vjp is wrong, each with the nodes where it is, in network order: the
        node's op, or the op its attributes name that fails alone (``EdgeCheck.culprit``)."""
        found: dict[str, dict[Hashable, None]] = {}
        for edge, check in self.wrong.items():
            op = check.culprit[1] if check.culprit else self._network().op_name(edge.target)
            found.setdefault(op, {})[edge.target] = None
        return {op: tuple(nodes) for op, nodes in found.items()}

    def counts(self) -> dict[str, int]:
        """How many edges agree, are wrong and are unchecked."""
        counts = dict.fromkeys(("agree", "wrong", "unchecked"), 0)
        for check in self.edges.values():
            counts[check.status] += 1
        return counts

    def unjudged(self) -> str:
        """How many edges are unchecked and why, with their nodes, e.g. ``3 of 8 edges were
        not judged: 2 where values are not finite (node 's'); 1 at a kink, where the forward
        is not smooth (node 'r')``; "" if none."""
        why: dict[str, dict[Hashable, None]] = {}
        count: dict[str, int] = {}
        for edge, check in self.edges.items():
            if check.status == "unchecked":
                reason = check.reason or "could not be judged"
                why.setdefault(reason, {})[edge.target] = None
                count[reason] = count.get(reason, 0) + 1
        if not why:
            return ""
        parts = []
        for reason, nodes in why.items():
            names = [show(n, 40) for n in list(nodes)[:3]] + (["…"] if len(nodes) > 3 else [])
            parts.append(
                f"{count[reason]} {reason} (node{'s' * (len(nodes) > 1)} {', '.join(names)})"
            )
        total = sum(count.values())
        return f"{total} of {len(self.edges)} edges were not judged: {'; '.join(parts)}"

    def lines(self) -> list[str]:
        """One line per wrong edge, naming its node, op and operand and the error, e.g.
        ``wrong vjp: node 'h2' (op 'sigmoid', operand 0): max error 0.5 vs finite
        differences``; without any, each failed parameter's message (``failed``), then
        what was not judged (``unjudged``)."""
        net = self._network()
        lines = []
        for edge, check in self.wrong.items():
            errors = [
                f"{err:.2g} vs {oracle}"
                for err, oracle in (
                    (check.differences, "finite differences"),
                    (check.autodiff, "jax.vjp"),
                )
                if err is not None and err > 0
            ]
            inner = f", its {check.culprit[0]} {check.culprit[1]!r}" if check.culprit else ""
            lines.append(
                f"wrong vjp: node {show(edge.target)} (op {net.op_name(edge.target)!r}{inner}, "
                f"operand {edge.position}): max error {', '.join(errors) or '?'}"
                + (f" ({check.note})" if check.note else "")
            )
        if lines:  # the wrong rules explain the parameters' wrong gradients
            return lines
        lines = [f"wrong gradient: {message}" for message in self.failed.values()]
        unjudged = self.unjudged() if lines else ""  # what might explain them instead
        return [*lines, unjudged] if unjudged else lines

    def summary(self) -> str:
        """One line: how many edges agree, are wrong, are unchecked, and the oracles."""
        n = self.counts()
        oracles = "float64 central differences"
        if any(c.autodiff is not None for c in self.edges.values()):
            oracles += " and jax.vjp"
        return (
            f"{self.subject} on {self.backend}, every op's vjp per operand edge against "
            f"{oracles}: {n['agree']} agree (green), {n['wrong']} wrong (red), "
            f"{n['unchecked']} unchecked (grey)"
        )

    def marks(self) -> Marks:
        """The edges coloured by verdict, and a caption: the summary and each wrong edge."""
        self._network()
        colors = {edge: check.status for edge, check in self.edges.items()}
        return Marks(colors, (self.summary(), *self.lines()))

    def write(self, path: str | Path, wrt: Hashable | None = None, **options: Any) -> Path:
        """Draw the network with its edges coloured by verdict into ``path`` (any format of
        ``write_diagram``: .html .svg .png .pdf .dot .gv), atomically.

        Args:
            path: the file; its extension picks the format.
            wrt: a parameter whose chain-rule paths to highlight as well (default none).
            options: ``render``'s options (``scopes``, ``rankdir``, ...).
        """
        from graphbp.diagram import write_diagram

        return write_diagram(self._network(), path, wrt, marks=self.marks(), **options)

    def _network(self) -> Network:
        if self.net is None:
            raise InputError(
                f"this report of {self.subject} has no network to draw; make it with "
                "graphbp.testing.check_network(net, report=True)"
            )
        return self.net

    def __str__(self) -> str:
        text = (
            f"{self.subject} on {self.backend}: {self.compared} values compared, "
            f"max relative error {self.max_rel_error:.2e}"
        )
        if self.net is None:
            return text
        return "\n".join([text, self.summary(), *self.lines()])
