"""The agent: one background recorder per user and data directory (``km agent``).

- :mod:`.wire`: the frames relay and agent exchange, and where the agent's files are;
- :mod:`.link`: ``km monitor``'s side (lean: it is imported before the first byte is forwarded);
- :mod:`.daemon`: starting the agent process, exactly one per data directory;
- :mod:`.service`: the agent itself, one :class:`~kilometers.host.Host` for every session.
"""
