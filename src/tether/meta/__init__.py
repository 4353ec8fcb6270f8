"""The SQL index: a rebuildable cache of sealed records behind one :class:`MetaStore` interface."""
