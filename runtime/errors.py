"""The error every user-facing problem raises; the CLI prints its message on one line."""


class InfusionNetError(Exception):
    """A problem with the user's input or machine, worded for the user (no traceback needed)."""


class CheckError(InfusionNetError):
    """Options or inputs an accuracy check (export verification, `infusionnet check`) cannot use."""
