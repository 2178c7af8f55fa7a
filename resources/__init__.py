"""kos resources."""
