"""Conversion campaigns: model sources, converters, differential testing, isolation, executors."""
