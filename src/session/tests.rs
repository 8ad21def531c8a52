//! Session unit tests: a session driven with a fake clock and no sockets.
