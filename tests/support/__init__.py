"""Helpers the tests (and benchmarks) share: real services, found and started the same way everywhere."""
