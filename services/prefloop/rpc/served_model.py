"""The model behind the reward and trainer services: the reward head or the policy, one interface.

A run's loop model is the uncertainty head on frozen embeddings (``trainer.kind: reward_head``)
or a causal LM trained by DPO (``trainer.kind: policy``, docs/training.md). Both services hold
one copy each, built from the manifest exactly as the embedded run builds it; what travels
between them is the same in both cases:

* the **published state**: what the reward role needs to score at a version (the head's weights,
  or the policy's weights; the frozen reference never changes). The trainer publishes it to the
  shared checkpoint directory and announces it on the checkpoints topic (inline when small, else
  by uri), the reward service loads it (:mod:`prefloop.rpc.handoff`,
  :mod:`prefloop.rpc.dataplane`);
* the **trainer state**: everything a restarted trainer needs to continue identically (head,
  anchors, optimiser and replay buffer; or policy weights, AdamW state and the labelled pairs).

Version 0 is the seeded initial model on both sides and is never published: the head's initial
weights are kept at construction, the policy's are its frozen reference's.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Protocol

from prefloop.engine.local_roles import LocalReward, LocalRewardModel, LocalTrainer
from prefloop.engine.roles import RewardRole, TrainerRole
from prefloop.rpc.common import ServiceContext

if TYPE_CHECKING:  # torch and transformers load only for a policy run
    from prefloop.trainer.policy import PolicyModel


class ServedModel(Protocol):
    """What the reward and trainer services need of the loop's model."""

    model: Any
    """The underlying object (``LocalRewardModel`` or ``PolicyModel``); has ``version``."""

    def reward_role(self) -> RewardRole: ...

    def trainer_role(self) -> TrainerRole: ...

    def published_state(self) -> dict[str, Any]:
        """What the reward role scores with (head or policy weights)."""
        ...

    def load_published(self, state: dict[str, Any]) -> None: ...

    def load_initial(self) -> None:
        """The reward side back to version 0 (the seeded initial model)."""
        ...

    def trainer_state(self) -> dict[str, Any]:
        """Everything a restarted trainer continues from."""
        ...

    def load_trainer_state(self, state: dict[str, Any]) -> None: ...

    def reset_trainer(self) -> None:
        """The trainer side back to version 0 (initial weights, fresh optimiser, no pairs)."""
        ...


class ServedHead:
    """The reward head (embedder + feature cache + head + anchored trainer)."""

    def __init__(self, model: LocalRewardModel) -> None:
        self.model = model
        self._initial_head = copy.deepcopy(model.head.state_dict())
        self._initial_trainer = copy.deepcopy(model.trainer.state_dict())

    def reward_role(self) -> RewardRole:
        return LocalReward(self.model)

    def trainer_role(self) -> TrainerRole:
        return LocalTrainer(self.model)

    def published_state(self) -> dict[str, Any]:
        return dict(self.model.head.state_dict())

    def load_published(self, state: dict[str, Any]) -> None:
        self.model.head.load_state_dict(state)

    def load_initial(self) -> None:
        self.model.head.load_state_dict(copy.deepcopy(self._initial_head))

    def trainer_state(self) -> dict[str, Any]:
        return dict(self.model.trainer.state_dict())

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.model.trainer.load_state_dict(state)

    def reset_trainer(self) -> None:
        self.model.trainer.load_state_dict(copy.deepcopy(self._initial_trainer))
        self.model.version = 0


class ServedPolicy:
    """The policy in the loop: its weights are published, its reference stays version 0."""

    def __init__(self, model: PolicyModel) -> None:
        self.model = model
        self._initial_optimizer = copy.deepcopy(model.optimizer.state_dict())

    def reward_role(self) -> RewardRole:
        from prefloop.reward.policy import PolicyReward

        return PolicyReward(self.model)

    def trainer_role(self) -> TrainerRole:
        from prefloop.trainer.policy import PolicyTrainer

        return PolicyTrainer(self.model)

    def published_state(self) -> dict[str, Any]:
        return dict(self.model.policy.state_dict())

    def load_published(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state)

    def load_initial(self) -> None:
        self.model.policy.load_state_dict(self.model.reference.state_dict())

    def trainer_state(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)

    def reset_trainer(self) -> None:
        self.load_initial()
        self.model.optimizer.load_state_dict(copy.deepcopy(self._initial_optimizer))
        self.model.replay = {}
        self.model.version = 0


def build_served_model(ctx: ServiceContext, model: LocalRewardModel | None = None) -> ServedModel:
    """The run's loop model as the services hold it, built as the embedded run builds it.

    Why: one place decides between the reward head and the policy (``trainer.kind``), so the
    reward and trainer services stay the same code for both.
    """
    if model is not None:
        return ServedHead(model)
    if ctx.run.spec.trainer.kind == "policy":
        from prefloop.engine.build import build_policy_model

        return ServedPolicy(build_policy_model(ctx.run, ctx.manifest_dir))
    from prefloop.engine.build import build_reward_model

    return ServedHead(build_reward_model(ctx.run, ctx.state_dir, ctx.manifest_dir))
