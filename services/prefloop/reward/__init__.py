"""reward: embedders, the feature cache and uncertainty-aware reward heads.

Frozen text features (``make_embedder``: MiniLM on CPU, a reward backbone's last token on a GPU
box) are cached once (``FeatureCache``); small heads (``make_head``: anchored ensemble, epinet,
Bayesian GPM) turn them into reward means, uncertainties and samples, and learn from labelled
pairs. ``pairwise_accuracy`` measures a head against judge scores on held-out prompts.

Importing this package does not import transformers; the embedder classes load it on first use.
"""

from prefloop.reward.base import Embedder, RewardHead, RewardPrediction
from prefloop.reward.bgpm import BGPMHead
from prefloop.reward.ensemble import EnsembleHead
from prefloop.reward.epinet import EpinetHead
from prefloop.reward.evaluation import pairwise_accuracy
from prefloop.reward.feature_cache import FeatureCache
from prefloop.reward.head_training import HeadInputError
from prefloop.reward.heads import HeadKind, head_from_state, make_head

__all__ = [
    "BGPMHead",
    "Embedder",
    "EnsembleHead",
    "EpinetHead",
    "FeatureCache",
    "HeadInputError",
    "HeadKind",
    "RewardHead",
    "RewardPrediction",
    "head_from_state",
    "make_head",
    "pairwise_accuracy",
]
