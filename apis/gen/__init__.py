"""Generated protobuf code (betterproto 2.0.0b7); regenerate with apis/generate."""
