"""One module per ``pvetrail`` subcommand (see ``api.cli.COMMAND_MODULES``)."""
