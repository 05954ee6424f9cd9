"""Data in and out: the shared records, strict readers for input files, atomic writers for output.

- :mod:`prefloop.data.records`: the vocabulary every layer shares (PromptItem, Response,
  PreferencePair, stable_id).
- :func:`load_prompt_items`: JSONL / Parquet / ``save_to_disk`` folders holding scored response
  pools, bare prompts or offline chosen/rejected pairs, with every broken row reported as
  ``file:line: field problem`` in one :class:`DataError`.
- :func:`write_dataset` / :func:`read_dataset`: the output preference data set in TRL's
  conversational format, written atomically as JSONL and Parquet.
"""

from prefloop.data.errors import DataError
from prefloop.data.readers import load_prompt_items
from prefloop.data.writers import append_jsonl, read_dataset, write_dataset, write_jsonl_atomic

__all__ = [
    "DataError",
    "append_jsonl",
    "load_prompt_items",
    "read_dataset",
    "write_dataset",
    "write_jsonl_atomic",
]
