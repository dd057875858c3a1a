"""The one exception type for data that cannot be found or read."""


class DataError(ValueError):
    """A data set cannot be built; the message names the problem and the fix in one line.

    A subclass of ValueError so that callers treating bad configuration generically still
    catch it, while tests and the CLI can tell data problems from other bugs.
    """
