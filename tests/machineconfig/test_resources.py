"""MachineConfigs / MachineTypes resources in a real in-memory state: stored and read back,
protobuf round trip, the parsed config, sensitivity, and bad machine types."""

from __future__ import annotations

import pytest

from kos.resources import machineconfig as mc
from kos.resources.config import (
    ACTIVE_ID,
    MACHINE_TYPE_ID,
    NAMESPACE,
    STAGED_ID,
    MachineConfigSpec,
    MachineTypeSpec,
)
from kos.resources.core import InMemoryState, Pointer, Resource


@pytest.mark.anyio
async def test_machine_config_resources(generated: mc.Generated) -> None:
    state = InMemoryState()
    active = Resource.new(MachineConfigSpec.from_container(generated.controlplane), ACTIVE_ID)
    staged = Resource.new(MachineConfigSpec.from_container(generated.worker), STAGED_ID)
    await state.create(active)
    await state.create(staged)
    got = await state.get(Pointer(NAMESPACE, MachineConfigSpec.definition.type, ACTIVE_ID))
    assert got.spec.container() == generated.controlplane
    assert got.spec.container().machine_type == "controlplane"
    listed = await state.list(got.metadata.kind)
    assert [r.metadata.id for r in listed] == [STAGED_ID, ACTIVE_ID]
    assert MachineConfigSpec.definition.sensitive
    assert MachineConfigSpec.unmarshal_proto(got.spec.marshal_proto()) == got.spec
    assert "mc" in MachineConfigSpec.definition.aliases

    mt = Resource.new(MachineTypeSpec("controlplane"), MACHINE_TYPE_ID)
    await state.create(mt)
    got_mt = await state.get(Pointer(NAMESPACE, MachineTypeSpec.definition.type, MACHINE_TYPE_ID))
    assert got_mt.spec.is_control_plane and not MachineTypeSpec("worker").is_control_plane
    with pytest.raises(ValueError, match="machineType: 'master' is invalid, expected one of unknown, init"):
        MachineTypeSpec("master")


def test_bad_config_text_raises() -> None:
    with pytest.raises(mc.ConfigErrors, match="valid YAML"):
        MachineConfigSpec(config="machine: [").container()
