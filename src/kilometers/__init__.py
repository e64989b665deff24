"""Kilometers: monitoring, debugging and security for MCP traffic."""

__version__ = "0.1.0"
