"""The base of errors that are the user's to fix (a bad input file, a missing corpus).

Their message says what and where; command-line entry points print it alone, without a
traceback. A package of any layer (a paper's own file reader, say) raises a subclass and
every CLI treats it so, without the CLI importing that package.
"""


class UserError(Exception):
    """A failure the user can fix; the message names the file or setting and the reason."""
