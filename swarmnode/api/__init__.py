"""The client protocol: framing, the Unix-socket server and the operations it dispatches."""
