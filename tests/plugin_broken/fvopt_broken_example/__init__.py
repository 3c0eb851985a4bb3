"""A plugin that cannot load (tests/test_extending.py)."""
