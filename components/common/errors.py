"""Errors that stop a run, as opposed to per-file failures that become ``failed`` records."""


class ConfigError(Exception):
    """A setting is missing or wrong (bucket, credentials, model name, endpoint).

    The message names the setting; the CLI exits with code 2.
    """


class StorageError(Exception):
    """Reading or writing an object failed after retries."""


class UnsafeKeyError(ValueError):
    """An object key would write outside the folder it belongs in (``../`` or an absolute path)."""
