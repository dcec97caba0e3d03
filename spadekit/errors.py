"""The one exception type for failures a user can cause and fix."""


class SpadekitError(Exception):
    """A user-fixable failure.

    The message is one sentence that names the file or setting at fault and says how to fix it. The
    command line prints it without a traceback (unless --debug) and exits non-zero.
    """
