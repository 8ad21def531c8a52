//! The one error type of the load generator: what went wrong and with which connection.
//!
//! Failures of single connections during a run are counted in the report rather than returned;
//! a `BenchError` ends the whole run (nothing to connect to, a broker refusing the set-up, bad
//! arguments).

use std::io;

/// Why a run could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket operation failed; `context` says which one.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. "connecting sub-3 to 127.0.0.1:1883".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The broker refused a CONNECT with this 3.1.1 return code or 5.0 reason code.
    #[error("{client_id}: CONNACK refused the connection with code {code:#04x}")]
    Refused {
        /// The client that was refused.
        client_id: String,
        /// The CONNACK return code (1 to 5 in 3.1.1; a reason code of 0x80 or more in 5.0).
        code: u8,
    },
    /// The broker answered something a run cannot go on with (a refused CONNACK, a failed
    /// subscription, a malformed packet, a timeout during set-up).
    #[error("{0}")]
    Broker(String),
    /// The arguments describe a run that cannot be made.
    #[error("invalid arguments: {0}")]
    Config(String),
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> BenchError {
        BenchError::Io { context: context.into(), source }
    }
}
