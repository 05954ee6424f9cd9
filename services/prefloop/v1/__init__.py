"""Generated gRPC stubs of protos/prefloop/v1 (``python -m prefloop.rpc.codegen``)."""
