//! The library's error type.
//!
//! A few variants callers match on (`NotFound`, `InvalidInput`, `Corrupt`), each with
//! the context a person needs to act on it: the path, the index, the stage, the value.

use std::path::PathBuf;

/// Errors from tandem-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given by the user is not acceptable; the message names it and what
    /// would be accepted.
    #[error("{0}")]
    InvalidInput(String),

    /// Something that should exist does not (a run, a child's file, an object).
    #[error("{what} not found: {location}")]
    NotFound { what: String, location: String },

    /// A file exists but is not what it should be: truncated, foreign, half written,
    /// or its contents disagree with its completion record.
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },

    /// An operating-system error on a path. The OS's words are the `source()`, so
    /// `{:#}` (anyhow) or [`chain`] shows them once.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A remote backend (S3, say) refused or failed a request; `message` carries the
    /// service's own words.
    #[error("{op} {location}: {message}")]
    Backend {
        op: &'static str,
        location: String,
        message: String,
    },

    /// A child failed in a way that is not one of the above (used by fault injection
    /// and by stage runners outside this crate).
    #[error("{stage} child {index}: {message}")]
    Child {
        stage: String,
        index: u32,
        message: String,
    },
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` while doing `op` ("open", "write", ...).
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A file that is not what it should be.
    pub fn corrupt(path: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// True when the error says what a result or file is (missing, or not what it
    /// should be), rather than that it could not be looked at (denied, a request that
    /// failed after its retries): only then is a child lost.
    pub fn is_missing_or_corrupt(&self) -> bool {
        self.is_not_found() || matches!(self, Error::Corrupt { .. })
    }

    /// True when the error means "it is not there" (a missing file or object).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// An error and all its sources, joined by ": " (what anyhow's `{:#}` shows), for
/// places that keep an error as text: a failed child's outcome, an unreadable
/// object's reason, a Lambda's error message.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        // Some errors repeat their source in their own message: show it once.
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_show_the_os_words_once() {
        let e = Error::io(
            "create bucket directory",
            "/proc/x",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "create bucket directory /proc/x");
        assert_eq!(chain(&e), "create bucket directory /proc/x: entity not found");
        assert_eq!(format!("{:#}", anyhow_like(&e)), chain(&e));
    }

    /// What anyhow's alternate Display does: the message and each source.
    fn anyhow_like(e: &Error) -> impl std::fmt::Display + '_ {
        struct D<'a>(&'a Error);
        impl std::fmt::Display for D<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)?;
                let mut s = std::error::Error::source(self.0);
                while let Some(x) = s {
                    write!(f, ": {x}")?;
                    s = x.source();
                }
                Ok(())
            }
        }
        D(e)
    }
}
