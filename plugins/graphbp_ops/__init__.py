"""graphbp's built-in ops, found through the ``graphbp.ops`` entry points like any plugin."""
