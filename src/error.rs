//! The engine's error type. Each variant says whose fault it is.

use sluice_connector_sdk::{ConnectorError, ErrorKind};

use crate::spec::Diagnostics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file is wrong; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    /// A source or sink failed.
    #[error("{what}: {source}")]
    Connector {
        what: String,
        #[source]
        source: ConnectorError,
    },
    /// A stage failed on a whole batch (not one document: those go to the DLQ).
    #[error("stage `{stage}`: {message}")]
    Stage { stage: String, message: String },
    /// A query was refused or failed.
    #[error("{0}")]
    Sql(String),
    /// The command line asks for something sluice will not do.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An invariant of sluice broke: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn connector(what: impl Into<String>, source: ConnectorError) -> Self {
        Error::Connector {
            what: what.into(),
            source,
        }
    }

    /// True when the user can fix it by changing the pipeline or the query.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Invalid(_) | Error::Sql(_) | Error::Usage(_) => true,
            Error::Connector { source, .. } => source.kind == ErrorKind::User,
            _ => false,
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Sql(e.to_string())
    }
}
