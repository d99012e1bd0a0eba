"""Parley HTTP API, workers, state store and command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parley")  # the one version source: pyproject.toml's [project] version
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
