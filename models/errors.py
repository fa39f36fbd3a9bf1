"""The one error hierarchy of pmaint.

Every error pmaint raises on purpose derives from :class:`PmaintError`, so the CLI can print
one clear line instead of a traceback.
"""


class PmaintError(Exception):
    """Base of all errors pmaint raises on purpose."""


class ConfigError(PmaintError):
    """A setting or command-line argument is wrong."""


class DataError(PmaintError):
    """Input data cannot be used (file format, missing columns, bad values)."""


class ArtifactError(PmaintError):
    """A model artifact is missing, corrupt or incompatible."""
