//! One error type for every connector, classified the way an operator needs it.

use std::fmt;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The pipeline's configuration or input is wrong; a retry will not help.
    User,
    /// An external system (a server, the filesystem, the network) failed.
    External,
    /// A bug in sluice or a connector.
    Internal,
    /// One record's content was refused (a NUL byte in PostgreSQL text, a NaN
    /// in a vector): that record is a dead letter, the others go on. See
    /// [`crate::refuse`].
    Data,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::User => "user error",
            ErrorKind::External => "external error",
            ErrorKind::Internal => "internal error",
            ErrorKind::Data => "data error",
        })
    }
}

/// A connector failure with its context, its kind and whether retrying may succeed.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {context}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub retryable: bool,
    pub context: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

impl ConnectorError {
    fn new(kind: ErrorKind, retryable: bool, context: impl Into<String>) -> Self {
        Self {
            kind,
            retryable,
            context: context.into(),
            source: None,
        }
    }

    /// The configuration or the input is wrong.
    pub fn user(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, false, context)
    }

    /// An external system failed in a way that a retry may fix.
    pub fn external(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, true, context)
    }

    /// A record's content was refused; retrying it will not help, but the other
    /// records of the write may go through without it.
    pub fn data(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, false, context)
    }

    /// Whether this refuses a record's content rather than failing the system.
    pub fn is_data(&self) -> bool {
        self.kind == ErrorKind::Data
    }

    /// An invariant of sluice itself was broken.
    pub fn internal(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, false, context)
    }

    /// What went wrong and its cause, without the kind: for a message that
    /// already says whose it is (a configuration issue, a dead letter).
    pub fn describe(&self) -> String {
        match &self.source {
            Some(s) => format!("{}: {s}", self.context),
            None => self.context.clone(),
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Override whether a retry may help.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

impl From<object_store::Error> for ConnectorError {
    fn from(e: object_store::Error) -> Self {
        let kind = match &e {
            object_store::Error::NotFound { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ErrorKind::User,
            _ => ErrorKind::External,
        };
        let retryable = kind == ErrorKind::External;
        ConnectorError::new(kind, retryable, "object store").with_source(e)
    }
}

impl From<parquet::errors::ParquetError> for ConnectorError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ConnectorError::external("parquet").with_source(e)
    }
}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ConnectorError::internal("arrow").with_source(e)
    }
}
