"""The Lacre domain and its use cases: standard library only, no I/O."""
