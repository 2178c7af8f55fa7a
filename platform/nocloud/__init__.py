"""The ``nocloud`` platform: config from a ``cidata`` volume or an SMBIOS ``ds=nocloud`` URL."""
