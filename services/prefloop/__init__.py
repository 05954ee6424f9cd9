"""prefloop: turn prompts into a preference dataset by active learning.

Per batch of prompts, a pool of LLMs answers each prompt, an uncertainty-aware reward model
scores every answer, an acquisition rule picks the pair(s) most worth judging, a judge labels
them and the reward model trains on the new labels. The algorithms (``acquisition``, ``reward``,
``judge``, ``trainer``) are pure and know nothing of gRPC, Kafka or Kubernetes; ``engine`` drives
one round; ``cli`` exposes ``prefloop run``.
"""

__version__ = "0.1.0"
