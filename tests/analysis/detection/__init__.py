"""The detection corpus: generated cases per detector family (see :mod:`.cases`)."""
