"""``prefloop bench``: label efficiency and speed of the acquisition rules, with statistics.

* ``label_efficiency``: every method over the same shuffled prompts per seed, learning curves of
  held-out reward-model accuracy, dataset quality and a downstream proxy;
* ``stats``: paired Wilcoxon signed-rank tests against Random (Holm-corrected), bootstrap CIs,
  area under the curve and annotations-to-reach;
* ``report``: ``points.csv``, learning-curve PNGs, ``summary.md/.csv``, ``significance.csv``,
  ``overhead.csv``;
* ``speed``: acquisition, scoring and training throughput and peak memory.
"""
