"""Source-to-source autodiff: IR → IR in the same language (reverse and forward)."""
