"""Generation (docs/method.md §4): sampling, the jitted decoder, tool-aware decode steps, the host session
that runs tools between steps, the token ids of calls, and `jtoolformer generate`."""
