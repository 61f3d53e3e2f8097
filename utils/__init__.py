"""Small helpers every layer above `processing` uses: atomic file writes, the user-error type of the CLIs."""
