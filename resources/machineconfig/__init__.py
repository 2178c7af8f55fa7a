"""kos machine configuration: the v1alpha1 config model and multi-doc documents, strict and
non-strict loading, validation for metal/cloud/container, redaction, stable YAML, strategic
merge and JSON 6902 patches, diffs, the secrets bundle, ``gen config`` and the client config.

Public API::

    ConfigContainer.load(text, strict=True) -> ConfigContainer     # raises ConfigErrors
    container.validate(mode) -> warnings                            # raises ConfigErrors
    container.to_yaml() / container.redacted() / container.to_data()
    parse_patch(text) -> Patch; apply_patches(container.to_data(), [patch, ...]) -> data
    config_diff(old, new) -> unified diff text (redacted)
    changed_paths(old, new) / reboot_required(old, new) -> YAML paths
    SecretsBundle.generate() / SecretsBundle.load(text) / bundle.to_yaml()
    generate(GenOptions(name, endpoint, ...), bundle, patches=...) -> Generated(controlplane, worker, client)
    ClientConfig.parse(text) / ClientConfig.load_file(path=None) / client.to_yaml()  # kosconfig
    save_config(path, container) / load_config(path)                # atomic temp+fsync+rename
    views.links(c) / views.hostname(c) / views.nameservers(c) ...    # v1alpha1 + documents merged
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.resources.machineconfig import views
    from kos.resources.machineconfig.clientconfig import (
        ClientConfig,
        Context,
    )
    from kos.resources.machineconfig.container import (
        ConfigContainer,
        load,
    )
    from kos.resources.machineconfig.cooperate import (
        quiet_gc,
    )
    from kos.resources.machineconfig.diff import (
        changed_paths,
        config_diff,
        reboot_required,
    )
    from kos.resources.machineconfig.documents import (
        DOCUMENT_KINDS,
        BondConfig,
        BridgeConfig,
        DHCPv4Config,
        DiskSMARTConfig,
        Document,
        ExtensionServiceConfig,
        FilesystemTrimConfig,
        HostnameConfig,
        KernelModuleConfig,
        KmsgLogConfig,
        Layer2VIPConfig,
        LinkConfig,
        LinkDocument,
        NetworkDefaultActionConfig,
        NetworkRuleConfig,
        RegistryAuthConfig,
        RegistryMirrorConfig,
        RegistryTLSConfig,
        ResolverConfig,
        StaticHostConfig,
        SysctlConfig,
        TimeSyncConfig,
        TrustedRootsConfig,
        UserVolumeConfig,
        VLANConfig,
        VolumeConfig,
    )
    from kos.resources.machineconfig.errors import (
        ConfigError,
        ConfigErrors,
    )
    from kos.resources.machineconfig.generate import (
        Generated,
        GenerateError,
        GenOptions,
        generate,
        normalize_endpoint,
    )
    from kos.resources.machineconfig.patch import (
        JSON6902Patch,
        Patch,
        PatchError,
        StrategicMergePatch,
        apply_patch,
        apply_patches,
        parse_patch,
    )
    from kos.resources.machineconfig.persist import (
        atomic_write,
        load_config,
        remove_leftovers,
        save_config,
    )
    from kos.resources.machineconfig.schema import (
        REDACTED,
    )
    from kos.resources.machineconfig.secrets import (
        SecretsBundle,
    )
    from kos.resources.machineconfig.v1alpha1 import (
        Config,
    )
    from kos.resources.machineconfig.validate import (
        MODES,
        check,
        validate,
    )
    from kos.resources.machineconfig.yamlio import (
        MAX_CONFIG_BYTES,
        decode_text,
        load_all,
        load_manifests,
    )

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "": ("views",),
            "clientconfig": (
                "ClientConfig",
                "Context",
            ),
            "container": (
                "ConfigContainer",
                "load",
            ),
            "cooperate": ("quiet_gc",),
            "diff": (
                "changed_paths",
                "config_diff",
                "reboot_required",
            ),
            "documents": (
                "DOCUMENT_KINDS",
                "BondConfig",
                "BridgeConfig",
                "DHCPv4Config",
                "DiskSMARTConfig",
                "Document",
                "ExtensionServiceConfig",
                "FilesystemTrimConfig",
                "HostnameConfig",
                "KernelModuleConfig",
                "KmsgLogConfig",
                "Layer2VIPConfig",
                "LinkConfig",
                "LinkDocument",
                "NetworkDefaultActionConfig",
                "NetworkRuleConfig",
                "RegistryAuthConfig",
                "RegistryMirrorConfig",
                "RegistryTLSConfig",
                "ResolverConfig",
                "StaticHostConfig",
                "SysctlConfig",
                "TimeSyncConfig",
                "TrustedRootsConfig",
                "UserVolumeConfig",
                "VLANConfig",
                "VolumeConfig",
            ),
            "errors": (
                "ConfigError",
                "ConfigErrors",
            ),
            "generate": (
                "Generated",
                "GenerateError",
                "GenOptions",
                "generate",
                "normalize_endpoint",
            ),
            "patch": (
                "JSON6902Patch",
                "Patch",
                "PatchError",
                "StrategicMergePatch",
                "apply_patch",
                "apply_patches",
                "parse_patch",
            ),
            "persist": (
                "atomic_write",
                "load_config",
                "remove_leftovers",
                "save_config",
            ),
            "schema": ("REDACTED",),
            "secrets": ("SecretsBundle",),
            "v1alpha1": ("Config",),
            "validate": (
                "MODES",
                "check",
                "validate",
            ),
            "yamlio": (
                "MAX_CONFIG_BYTES",
                "decode_text",
                "load_all",
                "load_manifests",
            ),
        }
    ),
)

__all__ = [
    "DOCUMENT_KINDS",
    "MAX_CONFIG_BYTES",
    "MODES",
    "REDACTED",
    "BondConfig",
    "BridgeConfig",
    "ClientConfig",
    "Config",
    "ConfigContainer",
    "ConfigError",
    "ConfigErrors",
    "Context",
    "DHCPv4Config",
    "DiskSMARTConfig",
    "Document",
    "ExtensionServiceConfig",
    "FilesystemTrimConfig",
    "GenOptions",
    "GenerateError",
    "Generated",
    "HostnameConfig",
    "JSON6902Patch",
    "KernelModuleConfig",
    "KmsgLogConfig",
    "Layer2VIPConfig",
    "LinkConfig",
    "LinkDocument",
    "NetworkDefaultActionConfig",
    "NetworkRuleConfig",
    "Patch",
    "PatchError",
    "RegistryAuthConfig",
    "RegistryMirrorConfig",
    "RegistryTLSConfig",
    "ResolverConfig",
    "SecretsBundle",
    "StaticHostConfig",
    "StrategicMergePatch",
    "SysctlConfig",
    "TimeSyncConfig",
    "TrustedRootsConfig",
    "UserVolumeConfig",
    "VLANConfig",
    "VolumeConfig",
    "apply_patch",
    "apply_patches",
    "atomic_write",
    "changed_paths",
    "check",
    "config_diff",
    "decode_text",
    "generate",
    "load",
    "load_all",
    "load_config",
    "load_manifests",
    "normalize_endpoint",
    "parse_patch",
    "quiet_gc",
    "reboot_required",
    "remove_leftovers",
    "save_config",
    "validate",
    "views",
]
