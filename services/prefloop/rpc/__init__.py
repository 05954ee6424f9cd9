"""gRPC role services: server builder, the five servicers, client roles and wire conversions.

``prefloop serve <role> RUN.yaml`` runs one servicer (``serve.py``); ``prefloop run RUN.yaml
--connect ...`` drives the round engine through the client roles (``clients.py``).
"""
