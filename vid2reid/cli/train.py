"""Placeholder: the 'train' command is being written (see issues). Owner replaces this file."""
