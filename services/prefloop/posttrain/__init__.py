"""posttrain: one command from a prefloop dataset to a trained model (TRL).

Config + trainer pairs in the TRL style:

* :mod:`~prefloop.posttrain.config` - the settings (:class:`PostTrainingSpec`, shared with
  ``spec.postTraining``) and the run-directory dataset they read;
* :mod:`~prefloop.posttrain.dpo` - DPO / IPO (``DPOTrainer``) and SimPO (``CPOTrainer``);
* :mod:`~prefloop.posttrain.reward_model` - Bradley-Terry sequence classification
  (``RewardTrainer``);
* :mod:`~prefloop.posttrain.logprobs` - summed response log-probabilities under a causal LM, the
  quantity DPO's implicit reward and the policy-in-the-loop acquisition read;
* :mod:`~prefloop.posttrain.model_card` - the ``README.md`` naming the dataset and the run;
* ``configs/zero3.json`` - the DeepSpeed ZeRO-3 config for multi-GPU launches.

Importing this package imports no torch; the trainer modules do.
"""
