"""What the registry raises; light to import, so the command line can catch it cheaply."""


class RegistryError(RuntimeError):
    """The registry could not do what was asked; the message says what state it is left in."""


class UnknownModelError(RegistryError, LookupError):
    """A registered model, version or alias that the store does not hold."""
