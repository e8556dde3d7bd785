"""Errors that im2im reports to a user as one clear message, without a traceback."""


class Im2ImError(Exception):
    """A problem with the user's input (file, config key, name or value) that the user can fix."""


class ConfigError(Im2ImError):
    """A config names an unknown key, class or preset, or a value of the wrong kind."""


class DataError(Im2ImError):
    """An input file or folder is missing, unreadable, empty or does not fit its pair."""


class PluginConflictError(Im2ImError):
    """Two plugins register the same name."""
