"""Data in and out: the shared records, strict readers for input files, atomic writers for output.

- :mod:`prefloop.data.records`: the vocabulary every layer shares (PromptItem, Response,
  PreferencePair, stable_id).
- :func:`load_prompt_items`: JSONL / Parquet / ``save_to_disk`` folders holding scored response
  pools, bare prompts or offline chosen/rejected pairs, with every broken row reported as
  ``file:line: field problem`` in one :class:`DataError`.
- :func:`write_dataset` / :func:`read_dataset`: the output preference data set in TRL's
  conversational format, written atomically as JSONL and Parquet.
- :mod:`prefloop.data.run_dataset` / :mod:`prefloop.data.card`: a run directory's dataset
  layout (``data/train.*``, ``data/ties.*``, the ``README.md`` dataset card) that
  ``datasets.load_dataset(run_dir)`` reads; :func:`dataset_file` says where each file is.
"""

from prefloop.data.errors import DataError
from prefloop.data.readers import load_prompt_items
from prefloop.data.run_dataset import dataset_file, write_run_dataset
from prefloop.data.writers import append_jsonl, read_dataset, write_dataset, write_jsonl_atomic

__all__ = [
    "DataError",
    "append_jsonl",
    "dataset_file",
    "load_prompt_items",
    "read_dataset",
    "write_dataset",
    "write_jsonl_atomic",
    "write_run_dataset",
]
