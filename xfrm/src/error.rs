//! Errors of the data plane. Messages name the operation, the object and, for
//! kernel refusals, the errno and the kernel's own extended-ACK text.

use std::fmt;
use std::io;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A data plane error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused before reaching the kernel.
    #[error("invalid request: {0}")]
    Invalid(String),

    /// The kernel has no ESP: NEWSA answered EPROTONOSUPPORT.
    #[error(
        "{op}: the kernel lacks ESP for {family} (module {module} is not built or cannot be \
         loaded; XFRM answered EPROTONOSUPPORT{})",
        kernel_text(.kernel_message)
    )]
    EspNotSupported {
        /// What was being done.
        op: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// esp4 or esp6.
        module: &'static str,
        /// The kernel's extended-ACK text, if any.
        kernel_message: Option<String>,
    },

    /// The kernel lacks a crypto algorithm: NEWSA answered ENOSYS.
    #[error(
        "{op}: the kernel lacks the algorithm {algorithm} (modules: {modules}; XFRM answered \
         ENOSYS{})",
        kernel_text(.kernel_message)
    )]
    AlgorithmNotSupported {
        /// What was being done.
        op: String,
        /// The kernel names of the SA's algorithms.
        algorithm: String,
        /// Modules that provide them.
        modules: String,
        /// The kernel's extended-ACK text, if any.
        kernel_message: Option<String>,
    },

    /// The object does not exist (ESRCH/ENOENT).
    #[error("{op}: not found{}", kernel_text(.kernel_message))]
    NotFound {
        /// What was being done.
        op: String,
        /// The kernel's extended-ACK text, if any.
        kernel_message: Option<String>,
    },

    /// The object already exists (EEXIST).
    #[error("{op}: already exists{}", kernel_text(.kernel_message))]
    Exists {
        /// What was being done.
        op: String,
        /// The kernel's extended-ACK text, if any.
        kernel_message: Option<String>,
    },

    /// No free SPI in the requested range.
    #[error("{op}: no free SPI left in the range")]
    SpiRangeExhausted {
        /// What was being done.
        op: String,
    },

    /// Outbound sequence numbers are used up (RFC 4303 §3.3.3): rekey.
    #[error("{op}: sequence number space exhausted, the SA must be rekeyed")]
    SequenceExhausted {
        /// What was being done.
        op: String,
    },

    /// EPERM: the process lacks CAP_NET_ADMIN.
    #[error("{op}: permission denied (XFRM needs CAP_NET_ADMIN; run as root)")]
    PermissionDenied {
        /// What was being done.
        op: String,
    },

    /// Any other refusal from the kernel.
    #[error("{op}: the kernel refused: {} (errno {errno}){}", io::Error::from_raw_os_error(*.errno), kernel_text(.kernel_message))]
    Kernel {
        /// What was being done.
        op: String,
        /// The positive errno.
        errno: i32,
        /// The kernel's extended-ACK text, if any.
        kernel_message: Option<String>,
    },

    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The kernel's answer could not be understood.
    #[error("{op}: malformed netlink answer: {detail}")]
    Malformed {
        /// What was being done.
        op: String,
        /// What was wrong.
        detail: String,
    },
}

fn kernel_text(m: &Option<String>) -> String {
    match m {
        Some(m) => format!(": \"{m}\""),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }

    /// Prefixes an `Invalid` message with context (other variants already carry `op`).
    pub(crate) fn context(self, ctx: impl fmt::Display) -> Self {
        match self {
            Self::Invalid(m) => Self::Invalid(format!("{ctx}: {m}")),
            other => other,
        }
    }

    /// Whether this is a "not found" error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this is an "already exists" error.
    pub fn is_exists(&self) -> bool {
        matches!(self, Self::Exists { .. })
    }
}
