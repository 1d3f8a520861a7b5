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
    #[error("stage `{stage}`: {source}")]
    Stage {
        stage: String,
        #[source]
        source: ConnectorError,
    },
    /// A query was refused or failed for what it asks (exit 2).
    #[error("{0}")]
    Sql(String),
    /// A query could not read its data: a store or the disk failed, not the
    /// query (exit 1). The cause is kept.
    #[error("the query could not read its data: {source}")]
    Query {
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// The command line asks for something sluice will not do.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint could not be written: the run stops, nothing after the
    /// last checkpoint counts, and the next start replays it.
    #[error("the checkpoint of epoch {epoch} could not be written ({tries} tries): {source}")]
    Checkpoint {
        epoch: u64,
        tries: u32,
        #[source]
        source: Box<Error>,
    },
    /// Another process (or another pipeline run) owns the state folder.
    #[error(
        "the state folder {} is in use by {holder}; stop that process first, or give this run its own state_dir (or --state)",
        state_dir.display()
    )]
    StateInUse {
        state_dir: std::path::PathBuf,
        holder: String,
    },
    /// The checkpoint in the state folder belongs to another pipeline.
    #[error(
        "the checkpoint {} was written by pipeline `{found}`, not `{expected}`; give each pipeline its own state_dir",
        path.display()
    )]
    ForeignCheckpoint {
        path: std::path::PathBuf,
        expected: String,
        found: String,
    },
    /// Arrow refused a batch sluice built: a bug.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
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

    /// A stage failed on a whole batch.
    pub fn stage(stage: impl Into<String>, source: ConnectorError) -> Self {
        Error::Stage {
            stage: stage.into(),
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
            Error::Invalid(_) | Error::Sql(_) | Error::Usage(_) | Error::ForeignCheckpoint { .. } => true,
            Error::Connector { source, .. } | Error::Stage { source, .. } => {
                matches!(source.kind, ErrorKind::User | ErrorKind::Data)
            }
            _ => false,
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    /// By variant, not by message: what the query asks for (its SQL, its
    /// plan, its types, a limit it ran into) is the user's to fix; a store,
    /// a file or the disk failing under it is not.
    fn from(e: datafusion::error::DataFusionError) -> Self {
        if query_failed_by_itself(&e) {
            Error::Sql(e.to_string())
        } else {
            Error::Query { source: e }
        }
    }
}

fn query_failed_by_itself(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::IoError(_) | D::ObjectStore(_) | D::ParquetError(_) | D::Internal(_) | D::ExecutionJoin(_) => {
            false
        }
        D::ArrowError(a, _) => !matches!(a.as_ref(), arrow::error::ArrowError::IoError(..)),
        // A sink's store, read through its SinkTable: its own kind says.
        D::External(inner) => match inner.downcast_ref::<ConnectorError>() {
            Some(c) => matches!(c.kind, ErrorKind::User | ErrorKind::Data),
            None => false,
        },
        _ => true,
    }
}
