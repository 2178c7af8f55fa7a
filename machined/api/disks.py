"""Disk RPCs of the machine service: BlockDeviceWipe and the META key/value store
(MetaList, MetaWrite, MetaDelete).

``DisksAPI(state, meta_location)`` is a machine-API extension.

* BlockDeviceWipe: each named device (``sdb``, ``loop3``, ``/dev/vdb``; a whole disk or a
  partition) must be a block device the kernel knows, not the node's system disk
  (``SystemDisks``), not mounted (nor any of its partitions), not held (device mapper, RAID);
  otherwise FAILED_PRECONDITION naming the reason, and nothing is wiped (every device is
  checked before the first is touched). ``FAST`` erases the signatures, partition tables and
  the first/last MiB (``kos.platform.block``); ``ZEROES`` writes zeroes over the whole device;
  ``drop_partition`` then removes a wiped partition from its disk's GPT.
* META: the keys of the system disk's META partition (``kos.platform.image.meta``). The boot
  slot keys (``active``, ``fallback``, ``tries``, ``good-a``, ``good-b``) are read-only here:
  upgrade, rollback and the boot confirmer own them. A node that did not boot from a kos
  system disk has no META: FAILED_PRECONDITION.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.platform.block import device, filesystem, partition, sysfs
from kos.platform.image import install, installer, meta
from kos.resources.core import Pointer, State, echo

RESERVED_KEYS = frozenset({"active", "fallback", "tries", "good-a", "good-b"})
ZERO_CHUNK = 4 * 1024 * 1024

Method = pb.BlockDeviceWipeRequestDeviceMethod


def system_meta() -> tuple[str, int]:
    """(system disk, META offset) of this node; InstallError when it has none (blocking)."""
    disk = installer.system_disk()
    return disk, install.locate(disk).meta_offset


def _zero_device(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_EXCL)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        zeros = bytes(ZERO_CHUNK)
        done = 0
        while done < size:
            done += os.write(fd, zeros[: min(ZERO_CHUNK, size - done)])
        os.fsync(fd)
    finally:
        os.close(fd)


class DisksAPI:
    def __init__(self, state: State, meta_location: Callable[[], tuple[str, int]] = system_meta) -> None:
        self.state = state
        self.meta_location = meta_location
        self._lock = anyio.Lock()

    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        unary = Cardinality.UNARY_UNARY
        d.add(p + "BlockDeviceWipe", self.wipe, unary)
        d.add(p + "MetaList", self.meta_list, unary)
        d.add(p + "MetaWrite", self.meta_write, unary)
        d.add(p + "MetaDelete", self.meta_delete, unary)

    # -- wipe -------------------------------------------------------------------------------
    async def _system_disks(self) -> set[str]:
        from kos.resources.block import NAMESPACE, SYSTEM_DISK_ID, SystemDiskSpec

        r = await self.state.get_or_none(Pointer(NAMESPACE, SystemDiskSpec.definition.type, SYSTEM_DISK_ID))
        if r is None:
            return set()
        return {n for n in (os.path.basename(r.spec.dev_path), r.spec.disk_id) if n}

    async def wipe(self, call: Call) -> None:
        req = parse(pb.BlockDeviceWipeRequest, await call.request())
        if not req.devices:
            raise GRPCError(Status.INVALID_ARGUMENT, "devices: name at least one device to wipe")
        system = await self._system_disks()
        refs: list[tuple[device.DeviceRef, Method, tuple[device.DeviceRef, int] | None]] = []
        for i, dev in enumerate(req.devices):
            if dev.method not in set(Method):
                raise GRPCError(Status.INVALID_ARGUMENT, f"devices[{i}].method: unknown value {int(dev.method)}")
            name = dev.device.strip()
            if not name or "/" in name.removeprefix("/dev/") or name in (".", ".."):
                raise GRPCError(
                    Status.INVALID_ARGUMENT,
                    f"devices[{i}].device: {echo(dev.device)}: expected a device name such as sdb or /dev/sdb")
            path = name if name.startswith("/dev/") else f"/dev/{name}"
            try:
                ref = await anyio.to_thread.run_sync(device.identify, path)
            except device.DeviceRefusedError as exc:
                raise GRPCError(Status.NOT_FOUND, f"devices[{i}].device: {exc}") from None
            if ref.name in system or ref.disk_name in system:
                raise GRPCError(Status.FAILED_PRECONDITION,
                                f"devices[{i}].device: {path} is (on) the system disk: use kosctl reset instead")
            try:
                await device.guard_async(ref, partition=ref.is_partition)
            except device.DeviceRefusedError as exc:
                raise GRPCError(Status.FAILED_PRECONDITION, f"devices[{i}].device: {exc}") from None
            drop = None
            if dev.drop_partition and ref.is_partition:
                part = await anyio.to_thread.run_sync(sysfs.read_device, ref.name)
                disk = await anyio.to_thread.run_sync(device.identify, f"/dev/{ref.disk_name}")
                if part is None or not part.partition_number:
                    raise GRPCError(Status.FAILED_PRECONDITION, f"devices[{i}].device: {path}: no partition number")
                drop = (disk, part.partition_number)
            refs.append((ref, dev.method, drop))
        wiped: list[str] = []
        async with self._lock:
            for ref, method, drop in refs:
                try:
                    await filesystem.wipe(ref)
                    if method == Method.ZEROES:
                        await anyio.to_thread.run_sync(_zero_device, ref.path)
                    if drop is not None:
                        await partition.delete_partition(*drop)
                except device.DeviceRefusedError as exc:
                    raise GRPCError(Status.FAILED_PRECONDITION, f"{ref.path}: {exc} (wiped so far: {wiped})") from None
                wiped.append(ref.path)
        await call.send(bytes(pb.BlockDeviceWipeResponse(wiped=wiped)))

    # -- META -------------------------------------------------------------------------------
    async def _meta(self) -> tuple[str, int]:
        try:
            return await anyio.to_thread.run_sync(self.meta_location)
        except (install.InstallError, OSError) as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, f"META: {exc}") from None

    async def meta_list(self, call: Call) -> None:
        parse(pb.MetaListRequest, await call.request())
        path, offset = await self._meta()
        values = await anyio.to_thread.run_sync(meta.read, path, offset)
        keys = [pb.MetaKey(key=k, value=v) for k, v in sorted(values.items())]
        await call.send(bytes(pb.MetaListResponse(keys=keys)))

    def _check_key(self, key: str) -> None:
        if not meta.KEY_RE.match(key):
            raise GRPCError(Status.INVALID_ARGUMENT, f"key: {echo(key)}: expected 1-32 characters of [a-z0-9_-]")
        if key in RESERVED_KEYS:
            raise GRPCError(
                Status.FAILED_PRECONDITION,
                f"key: {echo(key)} is a boot slot key owned by upgrade/rollback (read-only through the API)")

    async def meta_write(self, call: Call) -> None:
        req = parse(pb.MetaWriteRequest, await call.request())
        self._check_key(req.key)
        if not meta.VALUE_RE.match(req.value):
            raise GRPCError(Status.INVALID_ARGUMENT,
                            f"value: {echo(req.value, 40)}: expected at most 200 printable ASCII characters, no '='")
        await self._update(lambda values: {**values, req.key: req.value})
        await call.send(bytes(pb.MetaWriteResponse()))

    async def meta_delete(self, call: Call) -> None:
        req = parse(pb.MetaDeleteRequest, await call.request())
        self._check_key(req.key)
        path, offset = await self._meta()
        values = await anyio.to_thread.run_sync(meta.read, path, offset)
        if req.key not in values:
            raise GRPCError(
                Status.NOT_FOUND, f"key: {echo(req.key)} is not in META (keys: {', '.join(sorted(values))})")
        await self._update(lambda v: {k: x for k, x in v.items() if k != req.key})
        await call.send(bytes(pb.MetaDeleteResponse()))

    async def _update(self, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        path, offset = await self._meta()
        async with self._lock:
            values = await anyio.to_thread.run_sync(meta.read, path, offset)
            try:
                await anyio.to_thread.run_sync(meta.write, path, change(values), offset)
            except meta.MetaError as exc:
                raise GRPCError(Status.RESOURCE_EXHAUSTED, str(exc)) from None
