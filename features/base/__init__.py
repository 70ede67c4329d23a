"""What every layer shares, at the very bottom: the project's errors, the params machinery,
atomic outputs and UTC date helpers. Nothing here imports the rest of the project."""
