"""The hierarchy a large drawing is made of: scopes as nested groups, repeated blocks folded,
and groups of too many children split into ranges.

Graph only: no Graphviz, no NumPy. Group ids (``g0`` the root, then ``g1``, ``g2``, ...) are
graphbp's own, never user text, so they are safe as SVG and HTML ids.

Rules:

- Scopes come from the node attribute ``scope`` ("/"-nested: ``"enc/block1"``), set by the
  builder's ``b.scope``, by ``from_jax`` (``jax.jit`` functions and ``jax.named_scope``) and by
  ``gb.mlp``'s layers. Nested scopes are nested groups.
- An unscoped ``param`` or ``const`` whose consumers all lie in one scope (the deepest one
  they share) belongs to that scope, so that a block's parameters fold with the block.
  Inputs stay where their own ``scope`` puts them: they are the model's interface.
- Folds: inside a group, two or more consecutive child scopes that are structurally identical
  (same ops, attributes, shapes and wiring, node names aside) become one fold group whose
  children are those scopes.
- Ranges: a group of more than ``WIDTH`` children gets them split into consecutive range
  groups (recursively), so that no group has more than ``WIDTH`` children.

Building an outline takes time linear in nodes and edges times the scope depth (and a sort per
scope).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from graphbp.chain import Edge

if TYPE_CHECKING:
    from graphbp.graph import Network

GroupKind = Literal["root", "scope", "fold", "range"]
WIDTH = 40
"""The most children a group has: more are split into ranges of consecutive children."""

Item = str | Hashable
"""A group id or a graph node."""


@dataclass(frozen=True)
class Group:
    """One group of the outline.

    Attributes:
        id: ``"g0"`` for the root, then ``"g1"``, ``"g2"``, ... in a stable order.
        kind: ``"root"``, ``"scope"``, ``"fold"`` (repeated identical scopes) or ``"range"``.
        name: user text, not escaped: a scope's full "/"-path, a fold's ``"block0 … block11"``,
            a range's first and last items and its count of items (``"layer1 … layer40 (40
            items)"``, a node by its name), the root's ``""``.
        parent: the enclosing group's id; the root's is None.
        children: sub-group ids and graph nodes, in topological order of their first member
            (``Outline.is_group`` tells them apart).
        members: every graph node inside, in topological order (``net.order``).
        repeats: a fold's number of identical blocks (at least 2); otherwise 1.
    """

    id: str
    kind: GroupKind
    name: str
    parent: str | None
    children: tuple[Item, ...]
    members: tuple[Hashable, ...]
    repeats: int = 1


class View(NamedTuple):
    """What a drawing shows with some groups open.

    Attributes:
        boxes: the drawn items, groups and nodes, in the outline's order.
        links: every operand edge between two different boxes, by the pair of boxes
            (source box, target box) it is drawn between.
        expanded: the open groups (the root is always open).
    """

    boxes: tuple[Item, ...]
    links: dict[tuple[Item, Item], tuple[Edge, ...]]
    expanded: frozenset[str]


class _Draft:
    """A group while the outline is built (ids are given at the end)."""

    def __init__(self, kind: GroupKind, name: str, path: tuple[str, ...] = ()) -> None:
        self.kind: GroupKind = kind
        self.name = name
        self.path = path
        self.children: list[_Draft | Hashable] = []
        self.first = -1  # topological position of the first member
        self.last = -1
        self.repeats = 1


class Outline:
    """The groups of ``net``: scopes, folds of repeated scopes, and ranges.

    Args:
        net: the validated network.
        width: the most children a group may have (at least 2).

    Attributes:
        net: the network.
        groups: every group by id, the root ``"g0"`` first, parents before children.
        group_of: each node's innermost group id.
    """

    def __init__(self, net: Network, width: int = WIDTH) -> None:
        if not isinstance(width, int) or isinstance(width, bool) or width < 2:
            from graphbp.errors import InputError, show

            raise InputError(f"Outline width={show(width)}: give an int of at least 2")
        self.net = net
        self.width = width
        paths = _scope_paths(net)
        root = _tree(net, paths)
        self._fold(root, _Signatures(net, paths))
        self._split(root)
        self.groups: dict[str, Group] = {}
        self.group_of: dict[Hashable, str] = {}
        self._number(root)
        self.root = next(iter(self.groups))
        """The root group's id: ``"g0"`` (unless a node or scope is named so: then the next
        free ``g<k>``; group ids never equal a node name or a scope's full name)."""

    # ------------------------------------------------------------------ queries

    def is_group(self, item: object) -> bool:
        """Whether ``item`` is a group id of this outline (never a node: ids skip node names,
        and scope names)."""
        return isinstance(item, str) and item in self.groups

    def parent(self, item: Item) -> str | None:
        """The group directly containing ``item`` (a node or a group id); the root's is None."""
        if self.is_group(item):
            return self.groups[str(item)].parent
        return self.group_of[item]

    def ancestors(self, item: Item) -> tuple[str, ...]:
        """The group ids from the root down to ``item``'s parent (``item`` a node or group id)."""
        chain: list[str] = []
        parent = self.parent(item)
        while parent is not None:
            chain.append(parent)
            parent = self.groups[parent].parent
        return tuple(reversed(chain))

    def box(self, node: Hashable, expanded: frozenset[str]) -> Item:
        """What ``node`` is drawn as when the groups in ``expanded`` are open (the root
        always is): the outermost group on its ancestor chain that is not open, else ``node``."""
        for group in self.ancestors(node)[1:]:
            if group not in expanded:
                return group
        return node

    def view(self, expanded: Iterable[str] = frozenset()) -> View:
        """The boxes and links drawn with the groups in ``expanded`` open (unknown ids are
        ignored). Time linear in nodes and edges."""
        opened = frozenset(g for g in expanded if self.is_group(g)) | {self.root}
        boxes: list[Item] = []
        box_of: dict[Hashable, Item] = {}
        todo: list[Item] = [self.root]
        while todo:
            item = todo.pop()
            if self.is_group(item) and item in opened:
                todo.extend(reversed(self.groups[str(item)].children))
                continue
            boxes.append(item)
            if self.is_group(item):
                box_of.update(dict.fromkeys(self.groups[str(item)].members, item))
            else:
                box_of[item] = item
        links: dict[tuple[Item, Item], list[Edge]] = {}
        net = self.net
        for node in net.order:
            for position, source in enumerate(net.operands[node]):
                pair = (box_of[source], box_of[node])
                if pair[0] != pair[1]:
                    links.setdefault(pair, []).append(Edge(source, node, position))
        return View(tuple(boxes), {k: tuple(v) for k, v in links.items()}, opened)

    def find(self, name: str) -> str | None:
        """The id of the scope group whose full path is ``name``, or None."""
        return self._scopes.get(name)

    # ------------------------------------------------------------------ building

    def _fold(self, group: _Draft, signature: _Signatures) -> None:
        """Fold runs of consecutive identical scopes, children first."""
        for child in group.children:
            if isinstance(child, _Draft):
                self._fold(child, signature)
        out: list[_Draft | Hashable] = []
        run: list[_Draft] = []

        def flush() -> None:
            if len(run) >= 2:
                fold = _Draft("fold", f"{run[0].name} … {run[-1].name}")
                fold.children = list(run)
                fold.first, fold.last, fold.repeats = run[0].first, run[-1].last, len(run)
                out.append(fold)
            else:
                out.extend(run)
            run.clear()

        for child in group.children:
            if isinstance(child, _Draft) and child.kind == "scope":
                if run and signature(run[0]) != signature(child):
                    flush()
                run.append(child)
            else:
                flush()
                out.append(child)
        flush()
        group.children = out

    def _split(self, group: _Draft) -> None:
        """Split every group of more than ``width`` children into ranges of consecutive
        children, as few levels deep as the width allows."""
        for child in group.children:
            if isinstance(child, _Draft):
                self._split(child)
        group.children = self._ranges(group.children)

    def _ranges(self, children: list[_Draft | Hashable]) -> list[_Draft | Hashable]:
        """``children`` in at most ``width`` consecutive ranges (each split likewise)."""
        width = self.width
        if len(children) <= width:
            return children
        below = width  # what one range can hold in as few levels as the whole needs
        while below * width < len(children):
            below *= width
        count = -(-len(children) // below)  # as few ranges as that allows, of even sizes
        size = -(-len(children) // count)
        index = self.net.index
        out: list[_Draft | Hashable] = []
        for start in range(0, len(children), size):
            chunk = children[start : start + size]
            if len(chunk) == 1:
                out.extend(chunk)
                continue
            part = _Draft("range", "")
            part.children = self._ranges(chunk)
            part.first = min(_first(c, index) for c in chunk)
            part.last = max(_last(c, index) for c in chunk)
            part.name = f"{_end(chunk[0], 0)} … {_end(chunk[-1], -1)} ({len(chunk):,} items)"
            out.append(part)
        return out

    def _number(self, root: _Draft) -> None:
        """Give the groups ids in depth-first order and fill ``groups`` and ``group_of``."""
        order = self.net.index
        self._scopes: dict[str, str] = {}
        ids: dict[int, str] = {}
        drafts: list[tuple[_Draft, str | None]] = []
        todo: list[tuple[_Draft, str | None]] = [(root, None)]
        number = 0
        scopes = _scope_names(root)
        while todo:  # preorder, children in order
            draft, parent = todo.pop()
            while f"g{number}" in order or f"g{number}" in scopes:  # a name: skip the id
                number += 1
            gid = f"g{number}"
            number += 1
            ids[id(draft)] = gid
            drafts.append((draft, parent))
            todo.extend((c, gid) for c in reversed(draft.children) if isinstance(c, _Draft))
        members: dict[str, tuple[Hashable, ...]] = {}
        for draft, _ in reversed(drafts):  # children before parents
            gid = ids[id(draft)]
            parts: list[Hashable] = []
            for child in draft.children:
                if isinstance(child, _Draft):
                    parts.extend(members[ids[id(child)]])
                else:
                    parts.append(child)
                    self.group_of[child] = gid
            parts.sort(key=order.__getitem__)
            members[gid] = tuple(parts)
        for draft, parent in drafts:
            gid = ids[id(draft)]
            children = tuple(ids[id(c)] if isinstance(c, _Draft) else c for c in draft.children)
            self.groups[gid] = Group(
                gid, draft.kind, draft.name, parent, children, members[gid], draft.repeats
            )
            if draft.kind == "scope":
                self._scopes["/".join(draft.path)] = gid


def _end(item: _Draft | Hashable, side: Literal[0, -1]) -> str:
    """The name of the first (``side`` 0) or last (-1) item a range holds: a group's name
    (through ranges to the items they hold), or a node's name."""
    while isinstance(item, _Draft) and item.kind == "range":
        item = item.children[side]
    return item.name if isinstance(item, _Draft) else str(item)


def _first(item: _Draft | Hashable, index: dict[Hashable, int]) -> int:
    return item.first if isinstance(item, _Draft) else index[item]


def _last(item: _Draft | Hashable, index: dict[Hashable, int]) -> int:
    return item.last if isinstance(item, _Draft) else index[item]


def _scope_names(root: _Draft) -> set[str]:
    """The full names of the scopes under ``root``."""
    names: set[str] = set()
    todo = [root]
    while todo:
        draft = todo.pop()
        if draft.kind == "scope":
            names.add(draft.name)
        todo.extend(c for c in draft.children if isinstance(c, _Draft))
    return names


def _scope_paths(net: Network) -> dict[Hashable, tuple[str, ...]]:
    """Each node's scope path; an unscoped param or const takes the deepest scope all its
    consumers share."""
    attrs = net.graph.nodes
    paths: dict[Hashable, tuple[str, ...]] = {}
    for node in net.order:
        scope = attrs[node].get("scope")
        paths[node] = tuple(str(scope).split("/")) if scope is not None else ()
    consumers: dict[Hashable, list[Hashable]] = {}
    for node in net.order:
        for source in net.operands[node]:
            consumers.setdefault(source, []).append(node)
    for node in net.order:
        if net.kind[node] not in ("param", "const") or paths[node] or node not in consumers:
            continue
        shared: tuple[str, ...] | None = None
        for user in consumers[node]:
            path = paths[user]
            if shared is None:
                shared = path
                continue
            k = 0
            while k < len(shared) and k < len(path) and shared[k] == path[k]:
                k += 1
            shared = shared[:k]
            if not shared:
                break
        paths[node] = shared or ()
    return paths


def _tree(net: Network, paths: dict[Hashable, tuple[str, ...]]) -> _Draft:
    """The scope tree: a group per scope path, children in order of their first member."""
    root = _Draft("root", "")
    drafts: dict[tuple[str, ...], _Draft] = {(): root}
    for position, node in enumerate(net.order):
        path = paths[node]
        if path not in drafts:
            for depth in range(1, len(path) + 1):
                prefix = path[:depth]
                if prefix not in drafts:
                    draft = _Draft("scope", "/".join(prefix), prefix)
                    draft.first = position
                    drafts[prefix[:-1]].children.append(draft)
                    drafts[prefix] = draft
        drafts[path].children.append(node)
        for depth in range(len(path) + 1):
            drafts[path[:depth]].last = position
    root.first = 0
    return root


class _Signatures:
    """Structural signatures of scope groups: equal only for blocks of the same ops,
    attributes, shapes and wiring (node names aside).

    A block's nodes are put in a canonical topological order (by depth inside the block, then
    by what each node is), and each is described by its kind, op, attributes, shape, scope
    below the block, and operands: a position in that order, or, from outside the block, the
    operand's shape and which of the block's outside operands it is, numbered by first
    appearance in that order (a block reading the model's input computes what one reading
    the previous block's output does, but ``h + h`` is not ``h + x``). The descriptions are
    hashed.
    """

    def __init__(self, net: Network, paths: dict[Hashable, tuple[str, ...]]) -> None:
        self.net = net
        self.paths = paths
        self.cache: dict[int, bytes] = {}

    def __call__(self, draft: _Draft) -> bytes:
        key = id(draft)
        if key not in self.cache:
            self.cache[key] = self._compute(draft)
        return self.cache[key]

    def _compute(self, draft: _Draft) -> bytes:
        net = self.net
        where: dict[Hashable, tuple[str, ...]] = {}  # member → its scope path below draft
        todo = [draft]
        while todo:
            for child in todo.pop().children:
                if isinstance(child, _Draft):
                    todo.append(child)
                else:
                    where[child] = self.paths[child][len(draft.path) :]
        depth: dict[Hashable, int] = {}
        local: dict[Hashable, str] = {}
        for node in sorted(where, key=net.index.__getitem__):
            ins = [depth[s] for s in net.operands[node] if s in where]
            depth[node] = 1 + max(ins, default=-1)
            local[node] = repr(
                (
                    net.kind[node],
                    net.op_name(node) if node in net.ops else "",
                    _canon(net.attrs[node]),
                    net.shapes.get(node),
                    where[node],
                    tuple(
                        "in" if s in where else ("out", net.shapes.get(s))
                        for s in net.operands[node]
                    ),
                )
            )
        order = sorted(where, key=lambda n: (depth[n], local[n], net.index[n]))
        position = {n: k for k, n in enumerate(order)}
        digest = hashlib.blake2b(digest_size=20)
        outside: dict[Hashable, int] = {}  # outside operand → its order of first appearance
        for node in order:
            wiring = tuple(
                position[s] if s in position else ("out", outside.setdefault(s, len(outside)))
                for s in net.operands[node]
            )
            digest.update(f"{local[node]}{wiring}\n".encode("utf-8", "surrogatepass"))
        return digest.digest()


def _canon(value: Any) -> Any:
    """A value as plain data with a deterministic repr (arrays by dtype, shape and a digest of
    their bytes: NumPy's repr elides large arrays)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canon(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canon(v) for v in value)
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):
        data = hashlib.blake2b(value.tobytes(), digest_size=16).hexdigest()
        return ("array", str(value.dtype), tuple(getattr(value, "shape", ())), data)
    return value
