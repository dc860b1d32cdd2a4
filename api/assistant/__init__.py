"""``pvetrail mcp``: the read side offered to AI assistants as Model Context Protocol tools.

- :mod:`.tools`: which API operations are tools, their descriptions and input schemas, and
  how a tool's arguments become the very question the HTTP API parses (no MCP SDK needed);
- :mod:`.local`: answers from the configured database, through the API's own readers, never
  writing (no migration, no projection runner, no collector);
- :mod:`.remote`: answers from a remote pvetrail over HTTP, with a reader token;
- :mod:`.server`: the MCP server on stdio (the only module that imports the ``mcp`` SDK, an
  optional extra: ``pip install 'pvetrail[mcp]'``).
"""
