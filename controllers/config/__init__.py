"""Config controllers: acquisition of the machine config at boot (STATE, platform, kernel
cmdline, maintenance), the apply engine behind ApplyConfiguration (modes, try rollback,
staged), MachineType, and derived config resources. ``assembly.config_controllers`` lists them."""
