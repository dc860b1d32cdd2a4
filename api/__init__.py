"""The composition root: configuration, the command line, the aiohttp app and its lifecycle."""
