"""kosctl commands, one module each.

Every module here is discovered at start-up and must define::

    def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None

which adds its sub-command(s) and sets ``func`` (``(args) -> int``) as the parser default.
Heavy imports (grpclib, cryptography, yaml) belong inside the handlers, not at module top,
so that ``kosctl --help`` stays fast.
"""
