"""Constants shared by the bus tests."""

IDLE_SECONDS = 1.0
"""The read_all idle period used in tests (a loopback broker answers in milliseconds)."""
