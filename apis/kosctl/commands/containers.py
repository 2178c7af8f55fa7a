"""``kosctl containers [-k] [--namespace NS]``: the containers each node's containerd runs
(``system`` namespace by default, ``-k`` for Kubernetes' ``k8s.io``, ``--all`` for every one).
A Kubernetes container shows as ``NAMESPACE/POD:CONTAINER:<id>``, the id ``kosctl logs -k`` takes."""

from __future__ import annotations

import argparse

from kos.apis.kosctl import common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("containers", aliases=["c"], help="list the containers containerd runs on the nodes")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-k", "--kubernetes", action="store_true", help="the k8s.io namespace (Kubernetes pods)")
    group.add_argument("--namespace", help="a containerd namespace (default system)")
    group.add_argument("--all", action="store_true", help="every containerd namespace")
    common.add_target_args(p)
    p.set_defaults(func=run)


def namespace_of(args: argparse.Namespace) -> str:
    if args.all:
        return ""
    if args.kubernetes:
        return "k8s.io"
    return str(args.namespace or "system")


def run(args: argparse.Namespace) -> int:
    t = common.target(args)
    namespace = namespace_of(args)
    rows = [["NODE", "NAMESPACE", "ID", "IMAGE", "PID", "STATUS"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        raw = await conn.unary(auth.MACHINE + "Containers", bytes(pb.ContainersRequest(namespace=namespace)),
                               node=node)
        for c in pb.ContainersResponse().parse(raw).containers:
            rows.append([t.label(node), c.namespace, c.pod_ref or c.id, c.image, str(c.pid or "-"), c.status])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc
