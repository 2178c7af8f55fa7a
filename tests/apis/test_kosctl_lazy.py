"""kosctl start-up stays lean (issue 17): ``kosctl --help`` imports no command module, the
entry module imports no gRPC/protobuf/crypto library, a command imports only its own module,
and the table that lists commands without importing them matches what the modules register."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys

from kos.apis.kosctl import commands
from kos.apis.kosctl.main import command_word

HEAVY = ("grpclib", "betterproto", "cryptography", "h2", "yaml", "anyio")


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()[-1]
    return set(json.loads(out))


def test_importing_the_entry_module_loads_no_heavy_library() -> None:
    loaded = modules_after("import kos.apis.kosctl.main")
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert not [m for m in loaded if m.startswith("kos.apis.kosctl.commands.")]


def test_help_imports_no_command_module() -> None:
    code = (
        "import contextlib, io\nfrom kos.apis.kosctl.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "assert 'get-client-config' in out.getvalue()"
    )
    loaded = modules_after(code)
    assert not [m for m in loaded if m.startswith("kos.apis.kosctl.commands.")]
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert "argparse" not in loaded  # the overview is written from the table


def test_the_overview_lists_every_command_and_global_option() -> None:
    from kos.apis.kosctl.main import GLOBAL_OPTIONS, overview_text

    text = overview_text()
    for c in commands.COMMANDS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(c.name + " ") or ln.strip() == c.name)
        assert all(a in line for a in c.aliases)
    assert all(c.help in text for c in commands.COMMANDS)
    assert all(flag in text and help_ in text for flags, _, help_ in GLOBAL_OPTIONS for flag in flags)


def test_a_command_imports_only_its_own_module() -> None:
    code = "from kos.apis.kosctl.main import parser_for\nparser_for(['-n', '10.5.0.2', 'get', 'members'])"
    loaded = modules_after(code)
    assert [m for m in loaded if m.startswith("kos.apis.kosctl.commands.")] == ["kos.apis.kosctl.commands.get"]
    # the get path needs no protobuf machine API, config model or crypto library to build its parser
    assert not [m for m in loaded if m.split(".")[0] in ("grpclib", "betterproto", "cryptography")]


def test_a_client_connection_does_not_load_protobuf() -> None:
    # grpclib's default codec probes google.rpc (protobuf: ~40 ms) for error details kos never sends
    code = "from kos.apis.client import Connection\nConnection('127.0.0.1:1', insecure=True).channel"
    assert not [m for m in modules_after(code) if m.startswith("google")]


def test_the_command_word_skips_global_options_and_their_values() -> None:
    assert command_word(["-n", "get", "get", "members"]) == "get"
    assert command_word(["--kosconfig", "x", "--context=c", "-e1.2.3.4", "health"]) == "health"
    assert command_word(["--help"]) is None
    assert command_word([]) is None


def test_the_table_matches_what_every_module_registers() -> None:
    registered = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        p = argparse.ArgumentParser()
        sub = p.add_subparsers()
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
        for action in sub._choices_actions:
            aliases = tuple(n for n, q in sub.choices.items() if q is sub.choices[action.dest] and n != action.dest)
            registered.append(commands.Command(action.dest, info.name, str(action.help), aliases))
    assert sorted(registered) == sorted(commands.COMMANDS)
