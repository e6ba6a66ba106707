# Copyright (c) mmseg-sbce contributors.
"""Bad input reported as one line by the command-line tools, never as a traceback."""
import functools
from typing import Any, Callable, TypeVar

F = TypeVar('F', bound=Callable[..., Any])


class InputError(ValueError):
    """A problem with what the user gave (a file, a value); the message names it.

    A ``ValueError`` so that library callers that catch bad values keep working.
    """


# What a tool reports in one line: our own input errors and missing files (every missing
# file of this package is raised with its path in the message).
USER_ERRORS = (InputError, FileNotFoundError)


def report_input_errors(tool: str) -> Callable[[F], F]:
    """Decorate a tool's ``main``: bad input becomes ``tool: error: message`` and exit 1.

    The message goes to stderr through ``SystemExit(message)`` (Python prints it and
    exits with status 1), so a caller of ``main`` can catch it as argparse's errors.

    Only :data:`USER_ERRORS` are caught; any other exception keeps its traceback (it is a
    bug, not bad input). The message is printed on one line (newlines folded).

    Args:
        tool (str): The tool's name, as the prefix of the message (argparse's style).
    """

    def decorate(main: F) -> F:

        @functools.wraps(main)
        def wrapped(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except USER_ERRORS as exc:
                message = ' '.join(str(exc).split()) or type(exc).__name__
                raise SystemExit(f'{tool}: error: {message}') from None

        return wrapped  # type: ignore[return-value]

    return decorate
