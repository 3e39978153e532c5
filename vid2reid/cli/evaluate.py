"""Placeholder: the 'evaluate' command is being written (see issues). Owner replaces this file."""
