"""Content-addressed storage: the local object cache, trees, refs, packs, remotes, locks, gc."""
