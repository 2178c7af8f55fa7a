"""``kosctl etcd``: the etcd cluster of the control-plane nodes.

* ``members``: the member list as each node's etcd sees it;
* ``status``: each node's member status (db size, leader, raft index/term, learner, errors);
* ``snapshot PATH``: stream a consistent snapshot of one node's etcd into PATH;
* ``remove-member ID``: remove another member (hex id as ``members`` prints; ``--hostname`` to
  name it by host instead);
* ``leave``: the node leaves the cluster (its etcd stops for good);
* ``forfeit-leadership``: a leader hands leadership to another voter;
* ``alarm list`` / ``alarm disarm``: the cluster's alarms (NOSPACE, CORRUPT);
* ``defrag``: defragment each node's member database;
* ``status --cluster``: the status of every member (nodes discovered from the member list).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("etcd", help="manage the etcd cluster")
    cmds = p.add_subparsers(dest="etcd_command", metavar="COMMAND")
    p.set_defaults(func=lambda args: _usage(p))
    for name, func, help_ in (
        ("members", run_members, "list the etcd members"),
        ("status", run_status, "show each node's etcd member status"),
        ("leave", run_leave, "make the node leave the etcd cluster"),
        ("forfeit-leadership", run_forfeit, "make a leading member hand leadership to another member"),
    ):
        c = cmds.add_parser(name, help=help_)
        common.add_target_args(c)
        c.set_defaults(func=func)
    for c in cmds.choices.values():
        if c.prog.endswith(" status"):
            c.add_argument("--cluster", action="store_true",
                           help="every member: the nodes are the members' client URL hosts (forwarded)")
    al = cmds.add_parser("alarm", help="list or disarm the etcd cluster's alarms (NOSPACE, CORRUPT)")
    asub = al.add_subparsers(dest="alarm_command", metavar="COMMAND")
    al.set_defaults(func=lambda args: _usage(al))
    for name, func, help_ in (
        ("list", run_alarm_list, "list the active alarms"),
        ("disarm", run_alarm_disarm, "deactivate every alarm (os:admin); free space first for NOSPACE"),
    ):
        c = asub.add_parser(name, help=help_)
        common.add_target_args(c)
        c.set_defaults(func=func)
    df = cmds.add_parser("defrag", aliases=["defragment"],
                         help="defragment each node's etcd database (blocks that member while it runs; os:admin)")
    common.add_target_args(df)
    df.set_defaults(func=run_defrag)
    s = cmds.add_parser("snapshot", help="stream an etcd snapshot of one node into a file")
    s.add_argument("path", metavar="PATH", help="where to write the snapshot (e.g. db.snapshot)")
    common.add_target_args(s)
    s.set_defaults(func=run_snapshot)
    r = cmds.add_parser("remove-member", help="remove another etcd member by its id (or --hostname)")
    r.add_argument("member", metavar="ID", help="member id in hex as 'kosctl etcd members' prints it")
    r.add_argument("--hostname", action="store_true", help="ID is the member's hostname instead")
    common.add_target_args(r)
    r.set_defaults(func=run_remove)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _one_node(t: common.Target, what: str) -> str | None:
    if len(t.nodes) > 1:
        raise CLIError(f"etcd {what} acts on exactly one node, got {len(t.nodes)} (-n {','.join(t.nodes)})")
    return t.nodes[0] if t.nodes else None


def run_members(args: argparse.Namespace) -> int:
    from kos.apis.etcd import machine as etcd_api

    t = common.target(args)
    rows: list[list[str]] = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        for m in await etcd_api.member_list(conn, node=node):
            rows.append([t.label(node), f"{m.id:x}", m.hostname or "(unstarted)", ",".join(m.peer_urls),
                         ",".join(m.client_urls), str(m.is_learner).lower()])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)  # pragma: no cover


async def member_nodes(conn: common.Connection, node: str | None) -> list[str]:
    """The hosts of the etcd members' client URLs, as ``-n`` nodes (etcd status --cluster)."""
    from urllib.parse import urlsplit

    from kos.apis.etcd import machine as etcd_api

    hosts = []
    for m in await etcd_api.member_list(conn, node=node):
        for url in m.client_urls[:1]:
            host = urlsplit(url).hostname
            if host and host not in hosts:
                hosts.append(host)
    return hosts


def run_status(args: argparse.Namespace) -> int:
    from kos.apis.etcd import machine as etcd_api

    t = common.target(args)
    if getattr(args, "cluster", False):
        if len(t.nodes) > 1:
            raise CLIError("--cluster finds the members itself: give at most one node (-n) to ask for them")

        async def discover() -> list[str]:
            async with t.connect() as conn:
                return await member_nodes(conn, t.nodes[0] if t.nodes else None)

        t.nodes = common.run(discover)
    rows: list[list[str]] = [["NODE", "MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM",
                              "RAFT APPLIED INDEX", "LEARNER", "ERRORS"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        st = await etcd_api.status(conn, node=node)
        in_use = f"{_size(st.db_size_in_use)} ({100 * st.db_size_in_use / st.db_size:.2f}%)" if st.db_size else "0 B"
        rows.append([t.label(node), f"{st.member_id:x}", _size(st.db_size), in_use, f"{st.leader:x}",
                     str(st.raft_index), str(st.raft_term), str(st.raft_applied_index), str(st.is_learner).lower(),
                     ", ".join(st.errors) or "none"])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_snapshot(args: argparse.Namespace) -> int:
    from kos.apis.etcd import machine as etcd_api

    t = common.target(args)
    node = _one_node(t, "snapshot")
    path = Path(args.path)
    if path.is_dir():
        raise CLIError(f"snapshot path {args.path!r} is a directory, expected a file name")
    if not path.parent.is_dir():
        raise CLIError(f"snapshot path {args.path!r}: directory {str(path.parent)!r} does not exist")

    async def main() -> int:
        async with t.connect(timeout=None) as conn:
            return await etcd_api.snapshot(conn, path, node=node)

    size = common.run(main)
    print(f"etcd snapshot saved to {path} ({size} bytes)")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from kos.apis.etcd import machine as etcd_api

    t = common.target(args)
    node = _one_node(t, "remove-member")
    member, member_id = "", 0
    if args.hostname:
        member = args.member
    elif re.fullmatch(r"[0-9a-fA-F]{1,16}", args.member):
        member_id = int(args.member, 16)
    else:
        raise CLIError(f"member id {args.member!r}: expected hex as 'kosctl etcd members' prints it "
                       "(or --hostname to remove by hostname)")

    async def main() -> str:
        async with t.connect() as conn:
            return await etcd_api.remove_member(conn, member=member, member_id=member_id, node=node)

    removed = common.run(main)
    print(f"{t.label(node)}: removed etcd member {removed}")
    return 0


def _action(args: argparse.Namespace, what: str) -> int:
    from kos.apis.etcd import machine as etcd_api

    t = common.target(args)
    fn = etcd_api.leave_cluster if what == "leave" else etcd_api.forfeit_leadership

    async def call(conn: common.Connection, node: str | None) -> None:
        member = await fn(conn, node=node)
        if what == "leave":
            print(f"{t.label(node)}: member {member} left the etcd cluster", flush=True)
        elif member:
            print(f"{t.label(node)}: member {member} forfeited leadership", flush=True)
        else:
            print(f"{t.label(node)}: not the leader, nothing to do", flush=True)

    return common.run(lambda: common.fan_out(t, call))


def run_leave(args: argparse.Namespace) -> int:
    return _action(args, "leave")


def run_forfeit(args: argparse.Namespace) -> int:
    return _action(args, "forfeit")


def run_alarm_list(args: argparse.Namespace) -> int:
    return _alarms(args, "EtcdAlarmList")


def run_alarm_disarm(args: argparse.Namespace) -> int:
    return _alarms(args, "EtcdAlarmDisarm")


def _alarms(args: argparse.Namespace, method: str) -> int:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    t = common.target(args)
    rows: list[list[str]] = [["NODE", "MEMBER", "ALARM"]]
    done: list[str] = []

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.EtcdAlarmListResponse().parse(await conn.unary(auth.MACHINE + method, b"", node=node))
        for a in r.alarms:
            rows.append([t.label(node), f"{a.member_id:x}", a.alarm])
        if method == "EtcdAlarmDisarm":
            done.append(f"{t.label(node)}: disarmed {len(r.alarms)} alarm(s)")

    rc = common.run(lambda: common.fan_out(t, call))
    if len(rows) > 1 or method == "EtcdAlarmList":
        common.table(rows)
    for line in done:
        print(line)
    return rc


def run_defrag(args: argparse.Namespace) -> int:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    t = common.target(args)

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.EtcdDefragmentResponse().parse(
            await conn.unary(auth.MACHINE + "EtcdDefragment", b"", node=node, timeout=600))
        print(f"{t.label(node)}: defragmented: {_size(r.db_size_before)} -> {_size(r.db_size_after)}", flush=True)

    return common.run(lambda: common.fan_out(t, call, timeout=600))
