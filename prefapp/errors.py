"""The one error type every layer raises for input a person must fix; its message names the fix."""


class ConfigError(ValueError):
    """A setting is out of range; the message says which and what to use instead."""
