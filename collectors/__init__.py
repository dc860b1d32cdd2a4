"""Collectors: poll Proxmox VE and append every real change (and nothing else) to the log.

Importing this package is cheap: ``collectors.events`` (the vocabulary) pulls in no Proxmox
client, so readers can import it.
"""
