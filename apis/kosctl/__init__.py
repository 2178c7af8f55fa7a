"""kosctl: the operator's CLI (argparse; commands live in ``kos.apis.kosctl.commands``)."""
