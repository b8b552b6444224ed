"""The three errors of the data layer; each message names the file or folder and what to do."""

from __future__ import annotations


class GalaxyDataError(ValueError):
    """A file that is not a usable Galaxy10-layout file; the message names the file and what to do."""


class DownloadError(RuntimeError):
    """A download that failed (no network, HTTP error, wrong hash); the message says how to get the file."""


class DataFolderError(OSError):
    """The data folder cannot be created or written; the message says how to choose another one."""
