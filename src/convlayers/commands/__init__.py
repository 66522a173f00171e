"""Subcommands of the ``convlayers`` command line (see ``convlayers.cli``)."""
