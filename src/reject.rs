//! Why ingest refused an entry (PROTOCOL §6). One type for every refusal, so the CLI, the
//! HTTP server and tests all see the same classes, paths and words.

use std::fmt;

/// The refusal classes of PROTOCOL §6, in the order the spec ranks them when several apply.
/// `server` maps each to its HTTP status; nothing else needs to know the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectClass {
    /// A leaf over the size limit (413).
    TooLarge,
    /// Malformed JSON, a schema or field-rule violation, a `ts` too far ahead (400).
    Invalid,
    /// Bad signature, unknown or revoked signer, kind outside the signer's roles, or a
    /// facility the signer's organisation does not operate (403).
    Forbidden,
    /// Wrong `seq`, an id registered twice, more GPUs than are there (409).
    Conflict,
    /// A reference to an id that does not exist (422).
    UnknownReference,
}

impl RejectClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectClass::TooLarge => "too large",
            RejectClass::Invalid => "invalid",
            RejectClass::Forbidden => "forbidden",
            RejectClass::Conflict => "conflict",
            RejectClass::UnknownReference => "unknown reference",
        }
    }
}

/// One problem, located by a JSON pointer into the submitted envelope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub class: RejectClass,
    /// At least one; schema validation may report several.
    pub errors: Vec<FieldError>,
    /// For a wrong `seq`: the one the ledger expects next.
    pub expected_seq: Option<u64>,
}

impl Rejection {
    pub fn new(class: RejectClass, path: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            class,
            errors: vec![FieldError {
                path: path.into(),
                message: message.into(),
            }],
            expected_seq: None,
        }
    }

    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RejectClass::Invalid, path, message)
    }

    pub fn forbidden(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RejectClass::Forbidden, path, message)
    }

    pub fn conflict(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RejectClass::Conflict, path, message)
    }

    pub fn unknown_reference(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(RejectClass::UnknownReference, path, message)
    }

    /// Prefixes every path, e.g. with `/3` for the fourth envelope of a batch.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.path = format!("{prefix}{}", e.path);
        }
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.class.as_str())?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// A refused all-or-nothing batch: which envelope (from 0) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("envelope {position} refused, nothing written: {rejection}")]
pub struct BatchRejection {
    pub position: usize,
    pub rejection: Rejection,
}
