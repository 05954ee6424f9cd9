"""prefloop_operator: the kopf operator that reconciles ``ActiveRun`` resources.

For each ActiveRun it deploys the role services the run does not take from an ``endpoint:``
(one Deployment + Service per role, on the node pools the run names), creates the run's Kafka
topics and a driver Job that runs the round engine against the services (``prefloop driver``,
resuming from the last checkpoint on the run's volume), and keeps ``status`` true to what it
observes. Modules, one concern each:

- :mod:`.handlers`: the kopf handlers (reconcile, finalizer, settings);
- :mod:`.children`: pure functions from a run to the ConfigMap/Deployment/Service/Job dicts;
- :mod:`.status`: the one function from observations to phase and conditions;
- :mod:`.topics`: the run's Kafka topics, created and deleted idempotently;
- :mod:`.progress`: what the driver reports to the operator (a ConfigMap);
- :mod:`.driver`: ``prefloop driver``, the driver Job's command;
- :mod:`.kube`: a dict client for the few kinds used; :mod:`.cli`: ``prefloop operator``.

The RBAC the operator needs is in ``operators/prefloop_operator/RBAC.md``. Importing this package
imports nothing heavy (the driver's first heartbeat must not wait for the spec's imports).
"""
