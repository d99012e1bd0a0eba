"""Parley HTTP API, workers, state store and command line."""
