"""prefloop_operator: the kopf operator that reconciles ``ActiveRun`` resources.

Its job on a cluster: deploy the five role services on the GPU node pools an ActiveRun names,
drive rounds with the same round engine as ``prefloop run`` (through gRPC), and keep
``status`` (phase, round, annotations used, reward-model version, conditions) true to what the
children are doing. The CRD it serves is generated from ``prefloop.spec`` by ``prefloop crd``.

This package holds the operator's entry points as they are built; the embedded engine it drives
lives in ``prefloop.engine``.
"""

from prefloop.crd import GROUP, PLURAL, VERSION

__all__ = ["GROUP", "PLURAL", "VERSION"]
