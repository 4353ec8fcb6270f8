"""The working tree <-> objects: pointer files, the stat cache, add, status, checkout, data diff,
sync with remotes, gc and fsck. One verb per module."""
