"""``kosctl cluster create|destroy|show``: local clusters whose nodes are Linux namespaces.

``create`` does what a person would do by hand, in order, printing each step:

1. generate a secrets bundle and the control-plane/worker configs (``gen config``, with the
   ``--config-patch*`` patches; each node gets its hostname), endpoint ``https://<cp-1>:6443``;
2. start the nodes (``kos.platform.provision``): each is machined as PID 1 of its own PID,
   mount, UTS, IPC and network namespaces, on a bridge in the cluster's network namespace
   ``kos-<name>`` with addresses from ``--cidr``, in maintenance mode;
3. apply each node's config over the maintenance API (TLS without client certificate, the
   ``--insecure`` path);
4. write the client config context ``<name>`` (merged into ``--kosconfig``/``~/.kos/config``;
   endpoints are the host's forwarded loopback ports of the control planes, nodes are the
   nodes' cluster addresses, reached through the endpoint's forwarding);
5. bootstrap etcd on the first control plane (Bootstrap RPC) unless ``--skip-bootstrap``;
6. with ``--wait`` (default), wait for ``kosctl health`` to pass within ``--wait-timeout``.

Everything of the cluster lives in ``~/.kos/clusters/<name>/`` (configs, secrets, node
directories, console logs); ``destroy`` stops every process, deletes the namespaces and the
directory, and removes the context from the client config.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kos.apis.kosctl.errors import CLIError

M = "/kos.machine.MachineService/"
DEFAULT_NAME = "kos"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster", help="create, show and destroy local namespace clusters")
    csub = p.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    c = csub.add_parser("create", help="create a local cluster (nodes are Linux namespaces)")
    c.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")
    c.add_argument("--controlplanes", type=int, default=1, help="control-plane nodes (default 1)")
    c.add_argument("--workers", type=int, default=1, help="worker nodes (default 1)")
    c.add_argument("--cidr", default="10.5.0.0/24", help="node network inside the cluster namespace")
    c.add_argument("--config-patch", action="append", default=[], metavar="PATCH",
                   help="patch for every node's config: inline YAML/JSON or @file (repeatable)")
    c.add_argument("--config-patch-control-plane", action="append", default=[], metavar="PATCH",
                   help="patch for control-plane configs (repeatable)")
    c.add_argument("--config-patch-worker", action="append", default=[], metavar="PATCH",
                   help="patch for worker configs (repeatable)")
    c.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait until the cluster is healthy (default: yes)")
    c.add_argument("--wait-timeout", type=float, default=180.0, help="seconds to wait for health (default 180)")
    c.add_argument("--skip-bootstrap", action="store_true", help="do not bootstrap etcd (do it with kosctl bootstrap)")
    c.add_argument("--state-root", type=Path, help=argparse.SUPPRESS)
    _provisioner_args(c, vm=True)
    c.set_defaults(func=run_create)
    d = csub.add_parser("destroy", help="destroy a local cluster: processes, namespaces, mounts, files")
    d.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")
    d.add_argument("--state-root", type=Path, help=argparse.SUPPRESS)
    _provisioner_args(d, vm=False)
    d.set_defaults(func=run_destroy)
    s = csub.add_parser("show", help="list a local cluster's nodes and their state")
    s.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")
    s.add_argument("--state-root", type=Path, help=argparse.SUPPRESS)
    _provisioner_args(s, vm=False)
    s.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def _provisioner_args(p: argparse.ArgumentParser, *, vm: bool) -> None:
    if vm:
        p.add_argument("--provisioner", choices=("namespace", "qemu"), default="namespace",
                       help="nodes are Linux namespaces (default) or QEMU VMs booting the kos image")
    else:
        p.add_argument("--provisioner", choices=("namespace", "qemu"), default=None,
                       help="only look for a cluster of this provisioner (default: whichever made it)")
    if vm:
        p.add_argument("--cpus", type=int, default=1, help="qemu: vCPUs per VM (default 1)")
        p.add_argument("--memory", type=int, default=1024, help="qemu: MiB of memory per VM (default 1024)")
        p.add_argument("--disk", type=int, default=2048, help="qemu: MiB of system disk per VM (default 2048)")
        p.add_argument("--image-dir", type=Path, default=None,
                       help="qemu: rootfs-build output (vmlinux, initramfs.zst, rootfs.sqsh); default "
                            "$KOS_IMAGE_DIR or build/kos-image/out")


def _provisioner(args: argparse.Namespace) -> Any:
    if (getattr(args, "provisioner", None) or "namespace") == "qemu":
        import os

        from kos.platform.provision.namespaces import ProvisionError
        from kos.platform.provision.qemu import QemuProvisioner, VMSpec

        image_dir = getattr(args, "image_dir", None) or Path(
            os.environ.get("KOS_IMAGE_DIR", Path(__file__).resolve().parents[3] / "build" / "kos-image" / "out"))
        spec = VMSpec(image_dir, cpus=getattr(args, "cpus", 1), memory=getattr(args, "memory", 1024),
                      disk=getattr(args, "disk", 2048))
        if getattr(args, "cluster_command", "") == "create":
            try:
                spec.validate()
            except ProvisionError as exc:
                raise CLIError(str(exc)) from None
        return QemuProvisioner(spec, args.state_root)
    from kos.platform.provision.namespaces import NamespaceProvisioner

    return NamespaceProvisioner(args.state_root)


def _made_by(cluster_dir: Path) -> str:
    """Which provisioner made the cluster in ``cluster_dir`` (QEMU clusters record vm.json)."""
    return "qemu" if (cluster_dir / "vm.json").exists() else "namespace"


def _find(args: argparse.Namespace) -> tuple[Any, str] | None:
    """The provisioner that made cluster ``--name`` (looking where either keeps its clusters),
    or None when no cluster of that name exists. Sets ``args.provisioner``."""
    wanted = [args.provisioner] if args.provisioner else ["namespace", "qemu"]
    for kind in wanted:
        args.provisioner = kind
        prov = _provisioner(args)
        if prov.exists(args.name) and _made_by(prov.cluster_dir(args.name)) == kind:
            return prov, kind
    args.provisioner = wanted[0]
    return None


def _known(args: argparse.Namespace) -> str:
    names: set[str] = set()
    for kind in ("namespace", "qemu"):
        prov = _provisioner(argparse.Namespace(**{**vars(args), "provisioner": kind}))
        names.update(f"{n} ({_made_by(prov.cluster_dir(n))})" for n in prov.names())
    return ", ".join(sorted(names)) or "none"


def node_names(controlplanes: int, workers: int) -> list[tuple[str, str]]:
    return [(f"cp-{i + 1}", "controlplane") for i in range(controlplanes)] + [
        (f"w-{i + 1}", "worker") for i in range(workers)
    ]


def node_command(name: str, ip: str) -> list[str]:
    return [sys.executable, "-m", "kos.machined.main", "--maintenance", "--listen", "0.0.0.0:50000",
            "--node-name", ip, "--node-name", name]


def run_create(args: argparse.Namespace) -> int:
    from kos.platform.provision.namespaces import NodeRequest, ProvisionError, validate_name
    from kos.platform.provision.network import ClusterNetwork, NetworkError

    if args.controlplanes < 1:
        raise CLIError(f"--controlplanes {args.controlplanes}: expected at least 1")
    if args.workers < 0:
        raise CLIError(f"--workers {args.workers}: expected 0 or more")
    if args.wait_timeout <= 0:
        raise CLIError(f"--wait-timeout {args.wait_timeout}: expected a positive number of seconds")
    try:
        validate_name("cluster", args.name)
        net = ClusterNetwork(args.name, args.cidr)
        names = node_names(args.controlplanes, args.workers)
        ips = [str(net.address(i)) for i in range(len(names))]
        if getattr(args, "provisioner", "namespace") == "qemu":
            import json  # VMs: time from the cluster's SNTP server, system volumes on the virtio disk

            vm = {"machine": {"time": {"servers": [str(net.gateway)]}, "install": {"disk": "/dev/vda"}}}
            args.config_patch = [json.dumps(vm), *args.config_patch]
        archives = _registry_archives()
        if archives:
            import json

            from kos.platform.provision.registry import PORT, mirrors_patch

            args.config_patch = [json.dumps(mirrors_patch(f"{net.gateway}:{PORT}")), *args.config_patch]
    except (ProvisionError, NetworkError) as exc:
        raise CLIError(str(exc)) from None
    prov = _provisioner(args)
    if prov.exists(args.name):
        raise CLIError(f"cluster {args.name!r} already exists; destroy it first (kosctl cluster destroy --name "
                       f"{args.name})")
    started = time.monotonic()
    _step(f"generating configs for cluster {args.name!r} (endpoint https://{ips[0]}:6443)")
    configs, client_text, bundle_text = _generate(args, names, ips)
    _step(f"starting {len(names)} nodes ({args.controlplanes} control plane, {args.workers} worker) "
          f"on {args.cidr} in network namespace kos-{args.name}")
    binds = _kubernetes_binds(prov, args.name, [n for n, _ in names])
    requests = [
        NodeRequest(n, role, node_command(n, ip), env={"KOS_CGROUP_PARENT": f"kos-{args.name}-{n}"},
                    configure_address=False, binds=binds.get(n, []))
        for (n, role), ip in zip(names, ips, strict=True)
    ]
    try:
        state = prov.create(args.name, requests, cidr=args.cidr)
    except (ProvisionError, NetworkError, OSError) as exc:
        raise CLIError(f"creating the nodes: {exc}") from None
    cdir = Path(state.dir)
    _write_private(cdir / "secrets.yaml", bundle_text)
    for n, _ in names:
        _write_private(cdir / n / "config.yaml", configs[n])
    pushing = _start_registry(state, archives) if archives else None
    try:
        ok = _run_bring_up(args, state, configs, client_text)
        if pushing is not None:
            ok = _pushed(pushing) and ok
    except CLIError:
        print(f"the cluster stays for inspection (consoles: {cdir}/<node>/console.log); "
              f"remove it with: kosctl cluster destroy --name {args.name}", file=sys.stderr)
        raise
    if not ok:
        print(f"cluster {args.name!r} is not healthy yet; see kosctl health --cluster {args.name} and "
              f"{cdir}/<node>/console.log", file=sys.stderr)
        return 1
    _step(f"cluster {args.name!r} is up in {time.monotonic() - started:.1f} s")
    _print_nodes(state)
    print(f"\nkosctl --context {args.name} get members")
    return 0


def _kubernetes_binds(prov: Any, name: str, nodes: list[str]) -> dict[str, list[str]]:
    """Namespace nodes: the built Kubernetes binaries, CNI plugins and images, bound in."""
    from kos.platform.provision.kubernetes import Artifacts
    from kos.platform.provision.namespaces import NamespaceProvisioner

    if not isinstance(prov, NamespaceProvisioner):
        return {}
    art = Artifacts.locate()
    if not art.has_kubelet():
        _step(f"no Kubernetes binaries in {art.bin_dir}: the nodes' kubelet will wait for one")
    return {n: art.node_binds(prov.cluster_dir(name) / n) for n in nodes}


def _registry_archives() -> list[Path]:
    """The built image archives the cluster's registry serves (none: no registry): the
    cluster release's and the component images of every other built release."""
    import shutil

    from kos.platform.image import k8s

    archives = list(k8s.image_archives().values())
    if archives:  # every other built release's component images too (kosctl upgrade-k8s pulls them)
        for version in k8s.built_versions():
            if version != k8s.KUBERNETES_VERSION:
                archives += k8s.image_archives(version=version).values()
    if archives and shutil.which("docker-registry") is None:
        _step("docker-registry not found (apt-get install docker-registry): no cluster registry; "
              "nodes pull from the internet")
        return []
    return archives


def _start_registry(state: Any, archives: list[Path]) -> Any:
    """The cluster's registry on the gateway (kos.platform.provision.registry), filled in a
    background thread while the nodes boot; returns (thread, outcome) for ``_pushed``."""
    import threading

    from kos.platform.provision.registry import ClusterRegistry, RegistryError

    reg = ClusterRegistry(Path(state.dir), f"kos-{state.name}", state.gateway)
    try:
        reg.start()
    except (RegistryError, OSError) as exc:
        raise CLIError(f"starting the cluster's registry on {reg.endpoint}: {exc}") from None
    _step(f"registry http://{reg.endpoint} (mirror of registry.k8s.io, ghcr.io, docker.io): pushing "
          f"{len(archives)} images")
    outcome: dict[str, Any] = {}

    def push() -> None:
        t = time.monotonic()
        try:
            outcome["pushed"] = reg.push(archives)
            outcome["seconds"] = time.monotonic() - t
        except (RegistryError, OSError, ValueError) as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=push, name="registry-push", daemon=True)
    thread.start()
    return thread, outcome, reg


def _pushed(pushing: Any, timeout: float = 600.0) -> bool:
    thread, outcome, reg = pushing
    thread.join(timeout)
    if thread.is_alive():
        print(f"pushing images to {reg.endpoint}: still running after {timeout:.0f} s", file=sys.stderr)
        return False
    if "error" in outcome:
        print(f"pushing images to the cluster's registry {reg.endpoint}: {outcome['error']}", file=sys.stderr)
        return False
    _step(f"registry: {len(outcome['pushed'])} images pushed in {outcome['seconds']:.1f} s")
    return True


def _write_private(path: Path, text: str) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _generate(args: argparse.Namespace, names: list[tuple[str, str]], ips: list[str]) -> tuple[
    dict[str, str], str, str
]:
    import kos.resources.machineconfig as mc
    from kos.apis.kosctl.commands.machineconfig import load_patches

    patches = load_patches(args.config_patch)
    cp_patches = load_patches(args.config_patch_control_plane)
    if args.workers == 0:  # as talosctl: without workers, pods must be able to run on the control planes
        cp_patches.insert(0, mc.parse_patch("cluster:\n  allowSchedulingOnControlPlanes: true\n", source="--workers 0"))
    wk_patches = load_patches(args.config_patch_worker)
    bundle = mc.SecretsBundle.generate()
    opts = mc.GenOptions(cluster_name=args.name, endpoint=f"https://{ips[0]}:6443")
    try:
        gen = mc.generate(opts, bundle, patches=patches, controlplane_patches=cp_patches, worker_patches=wk_patches)
    except (mc.GenerateError, mc.PatchError, mc.ConfigErrors) as exc:
        raise CLIError(f"generating configs: {exc}") from None
    if getattr(args, "cidr", None):
        _check_cluster_subnets(args.cidr, gen.controlplane.to_data())
    out = {}
    for (n, role), ip in zip(names, ips, strict=True):
        base = gen.controlplane if role == "controlplane" else gen.worker
        hostname = mc.parse_patch(f"machine:\n  network:\n    hostname: {n}\n  certSANs: [{ip}]\n", source="node")
        try:
            data = mc.apply_patches(base.to_data(), [hostname])
            container = mc.ConfigContainer.load(_yaml_dump(data), strict=True)
            container.validate("container")
        except (mc.PatchError, mc.ConfigErrors) as exc:
            raise CLIError(f"config of node {n} (after --config-patch*): {exc}") from None
        out[n] = container.to_yaml()
    return out, gen.client.to_yaml(), bundle.to_yaml()


def _check_cluster_subnets(cidr: str, data: Any) -> None:
    """The node network must not overlap the pod or service subnets: the nodes' addresses would
    be routed into the cluster network, and certificates leave addresses of those subnets out."""
    import ipaddress

    docs = data if isinstance(data, list) else [data]
    network = ((next((d for d in docs if isinstance(d, dict) and "cluster" in d), {}).get("cluster") or {})
               .get("network") or {})
    nodes = ipaddress.ip_network(cidr)
    for key in ("podSubnets", "serviceSubnets"):
        for subnet in network.get(key) or []:
            try:
                other = ipaddress.ip_network(str(subnet), strict=False)
            except ValueError:
                continue  # the config's own validation names it
            if other.version == nodes.version and nodes.overlaps(other):
                raise CLIError(f"--cidr {cidr}: overlaps cluster.network.{key} {subnet}; expected a node network "
                               f"outside the pod and service subnets")


def _yaml_dump(data: Any) -> str:
    import yaml

    if isinstance(data, list):
        return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in data)
    return yaml.safe_dump(data, sort_keys=False)


def _run_bring_up(args: argparse.Namespace, state: Any, configs: dict[str, str], client_text: str) -> bool:
    """Run the bring-up; an API error that ends it (a node went away, a call failed for good)
    becomes a CLIError naming the step, never a traceback."""
    import anyio

    from kos.apis.client import APIError

    try:
        return anyio.run(lambda: _bring_up(args, state, configs, client_text))
    except APIError as exc:
        raise CLIError(f"bringing the cluster up: {exc}") from None
    except BaseExceptionGroup as group:
        api, rest = group.split(APIError)
        if api is None or rest is not None:
            raise
        first = api.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise CLIError(f"bringing the cluster up: {first}") from None


async def _bring_up(args: argparse.Namespace, state: Any, configs: dict[str, str], client_text: str) -> bool:
    import anyio

    from kos.apis.client import APIError, ClientConfig, Connection
    from kos.apis.client.health import ClusterNodes, run_checks
    from kos.apis.gen.kos import machine as pb

    deadline = time.monotonic() + max(args.wait_timeout, 60.0)

    async def until(what: str, fn: Any, *, retry: tuple[Any, ...] = (APIError,)) -> Any:
        last = None
        while True:
            try:
                return await fn()
            except retry as exc:
                last = exc
            if time.monotonic() > deadline:
                raise CLIError(f"{what}: gave up: {last}")
            await anyio.sleep(0.25)

    _step("waiting for the nodes' maintenance API")
    for n in state.nodes:
        async with Connection(f"127.0.0.1:{n.host_port}", insecure=True, timeout=5) as conn:
            async def version(conn: Connection = conn) -> pb.VersionResponse:
                return pb.VersionResponse().parse(await conn.unary(M + "Version", b""))

            v = await until(f"node {n.name}: maintenance API", version)
            if not v.maintenance:
                raise CLIError(f"node {n.name}: expected maintenance mode, the node already has a config")
            _step(f"applying the {n.role} config to {n.name} ({n.ip}) over the maintenance API")
            req = pb.ApplyConfigurationRequest(data=configs[n.name].encode())  # mode auto
            try:
                # the early maintenance API answers Version while machined still loads the node
                # (kos.machined.early): the apply waits for that, seconds in a TCG VM
                await conn.unary(M + "ApplyConfiguration", bytes(req), timeout=120)
            except APIError as exc:
                raise CLIError(f"node {n.name}: apply config: {exc}") from None

    cps = [n for n in state.nodes if n.role == "controlplane"]
    gen = ClientConfig.parse(client_text)
    _, ctx = gen.current()
    ctx.endpoints = [f"127.0.0.1:{n.host_port}" for n in cps]
    ctx.nodes = [cps[0].ip]
    _save_context(args, args.name, ctx)
    _write_private(Path(state.dir) / "kosconfig", ClientConfig(context=args.name, contexts={args.name: ctx}).dump())
    _step(f"client config context {args.name!r} written ({_kosconfig_path(args)})")

    async with Connection.from_context(ctx, endpoint=ctx.endpoints[0], timeout=10) as conn:
        _step(f"waiting for {cps[0].name}'s API over mutual TLS")

        async def version_tls() -> None:
            await conn.unary(M + "Version", b"")

        await until(f"node {cps[0].name}: API over mutual TLS", version_tls)
        if not args.skip_bootstrap:
            _step(f"bootstrapping etcd on {cps[0].name}")

            async def bootstrap() -> None:
                try:
                    await conn.unary(M + "Bootstrap", bytes(pb.BootstrapRequest()), timeout=30)
                except APIError as exc:
                    if "already bootstrapped" in exc.message:
                        return
                    if exc.status.name in ("UNIMPLEMENTED", "INVALID_ARGUMENT", "PERMISSION_DENIED"):
                        raise CLIError(f"bootstrap: {exc}") from None
                    raise

            await until("bootstrap etcd", bootstrap)
        if not args.wait:
            return True
        _step("waiting for the cluster to be healthy")
        kube = f"https://127.0.0.1:{cps[0].kube_port}" if getattr(cps[0], "kube_port", 0) else None
        nodes = ClusterNodes([n.ip for n in cps], [n.ip for n in state.nodes if n.role == "worker"],
                             kube_endpoint=kube)
        if kube is not None:
            await _write_kubeconfig(conn, cps[0].ip, Path(state.dir) / "kubeconfig", kube, args.name)
        remaining = max(1.0, args.wait_timeout)
        return await run_checks(conn, nodes, timeout=remaining, out=lambda s: print(f"    {s}", flush=True))


async def _write_kubeconfig(conn: Any, node: str, path: Path, server: str, cluster: str) -> None:
    """An admin kubeconfig for the forwarded Kubernetes API (the node's admin certificate)."""
    import anyio

    from kos.apis.client import APIError, GrpcState
    from kos.resources.core import NotFoundError
    from kos.resources.pki import render_kubeconfig
    from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID

    for _ in range(120):
        try:
            spec = (await GrpcState(conn, node=node).get(K8S_CERTS.pointer(K8S_CERTS_ID))).spec
            if spec.admin_cert:
                break
        except (APIError, NotFoundError):
            pass
        await anyio.sleep(0.5)
    else:
        print(f"    no Kubernetes admin certificate on {node} yet: no kubeconfig written", flush=True)
        return
    _write_private(path, render_kubeconfig(cluster=cluster, server=server, ca_pem=spec.ca_cert, user="admin",
                                           client_cert_pem=spec.admin_cert, client_key_pem=spec.admin_key))
    _step(f"kubeconfig for {server} written ({path})")


def _kosconfig_path(args: argparse.Namespace) -> Path:
    from kos.apis.client import default_path

    given = getattr(args, "kosconfig", None)
    return Path(given) if given else default_path()


def _save_context(args: argparse.Namespace, name: str, ctx: Any) -> None:
    from kos.apis.client import ClientConfig, ConfigError

    path = _kosconfig_path(args)
    try:
        cfg = ClientConfig.load(path)
    except ConfigError as exc:
        raise CLIError(f"cannot merge the new context into {path}: {exc}") from None
    cfg.contexts[name] = ctx
    cfg.context = name
    cfg.save(path)


def _remove_context(args: argparse.Namespace, name: str) -> bool:
    from kos.apis.client import ClientConfig, ConfigError

    path = _kosconfig_path(args)
    try:
        cfg = ClientConfig.load(path)
    except ConfigError:
        return False
    if name not in cfg.contexts:
        return False
    del cfg.contexts[name]
    if cfg.context == name:
        cfg.context = next(iter(cfg.contexts), "")
    cfg.save(path)
    return True


def run_destroy(args: argparse.Namespace) -> int:
    from kos.platform.provision.namespaces import ProvisionError

    found = _find(args)
    if found is None:
        from kos.platform.provision.network import netns_exists

        if not netns_exists(f"kos-{args.name}"):
            raise CLIError(f"cluster {args.name!r} does not exist (known: {_known(args)})")
        prov, kind = _provisioner(args), "leftovers of a"  # namespaces without cluster.json: clean up
    else:
        prov, kind = found
    _step(f"destroying {kind} cluster {args.name!r}")
    try:
        from kos.platform.provision.registry import ClusterRegistry

        if ClusterRegistry(prov.cluster_dir(args.name), f"kos-{args.name}", "").stop():
            _step("registry stopped")
        prov.destroy(args.name)
    except ProvisionError as exc:
        raise CLIError(f"destroy {args.name}: {exc}") from None
    if _remove_context(args, args.name):
        _step(f"context {args.name!r} removed from {_kosconfig_path(args)}")
    _step("done")
    return 0


def _print_nodes(state: Any) -> None:
    from kos.platform.provision.namespaces import node_boot_state, node_pid1

    print(f"{'NAME':<8} {'ROLE':<13} {'ADDRESS':<16} {'ENDPOINT':<18} {'STATE':<10} {'BOOTS':<6} PID")
    for n in state.nodes:
        pid1 = node_pid1(n)
        if pid1 is None and (Path(n.dir) / "qemu.json").exists():  # a QEMU VM: its QEMU process
            from kos.platform.provision.qemu import vm_pid

            pid1 = vm_pid(n)
        boot = node_boot_state(n)
        st = "running" if pid1 else str(boot.get("last", "stopped"))
        print(f"{n.name:<8} {n.role:<13} {n.address:<16} {'127.0.0.1:' + str(n.host_port):<18} {st:<10} "
              f"{boot.get('boots', 0)!s:<6} {pid1 or '-'}")


def run_show(args: argparse.Namespace) -> int:
    from kos.platform.provision.namespaces import NamespaceProvisioner, ProvisionError, forwarder_state

    found = _find(args)
    if found is None:
        raise CLIError(f"cluster {args.name!r} does not exist (known: {_known(args)})")
    prov, kind = found
    try:
        state = prov.load(args.name)
    except ProvisionError as exc:
        raise CLIError(f"{exc} (known: {_known(args)})") from None
    print(f"cluster {state.name} ({kind}): network {state.cidr} in namespace kos-{state.name}, state {state.dir}")
    forwarder = forwarder_state(state)
    if forwarder.startswith("down"):
        try:
            NamespaceProvisioner(args.state_root).ensure_forwarder(state)
            forwarder = f"{forwarder}; started again: {forwarder_state(state)}"
        except ProvisionError as exc:
            forwarder = f"{forwarder}; starting it again failed: {exc}"
    print(f"port forwarder: {forwarder}\n")
    _print_nodes(state)
    return 0
