"""Placeholder: the 'extract' command is being written (see issues). Owner replaces this file."""
