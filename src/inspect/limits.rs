//! Bounds on one query, so that no query can take the process (and, in the
//! daemon, every pipeline) down: a memory pool for DataFusion's operators, a
//! time limit, and caps on the rows and bytes of the result. Queries run on a
//! small runtime of their own, off the threads that drive pipelines.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use futures::StreamExt;
use sluice_connector_sdk::ByteSize;

use crate::{Error, Result};

/// How much one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// DataFusion's memory pool, and the most bytes a result may hold.
    pub memory: u64,
    /// How long a query may run, planning included.
    pub timeout: Duration,
    /// The most rows a result may hold.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory: 512 << 20,
            timeout: Duration::from_secs(60),
            max_rows: 100_000,
        }
    }
}

impl QueryLimits {
    /// A DataFusion runtime whose memory pool is [`QueryLimits::memory`], and
    /// no spilling: a query fails at its limit rather than filling the disk.
    pub fn runtime_env(&self) -> Result<Arc<RuntimeEnv>> {
        use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
        RuntimeEnvBuilder::new()
            .with_memory_limit(self.memory as usize, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .map_err(Error::from)
    }
}

/// The runtime queries execute on: two threads, apart from the pipelines'.
fn sql_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-sql")
            .enable_all()
            .build()
            .expect("the SQL runtime starts")
    })
}

/// Execute `df` within `limits`: on the SQL runtime, stopped at the time
/// limit, and refused once its result passes the row or byte cap.
pub async fn collect(df: DataFrame, limits: QueryLimits) -> Result<Vec<RecordBatch>> {
    let work = async move {
        let mut stream = df.execute_stream().await?;
        let (mut rows, mut bytes) = (0usize, 0u64);
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size() as u64;
            if rows > limits.max_rows {
                return Err(Error::Sql(format!(
                    "the result has more than {} rows; add a LIMIT or raise --max-rows",
                    limits.max_rows
                )));
            }
            if bytes > limits.memory {
                return Err(Error::Sql(format!(
                    "the result holds more than {}; select fewer columns or rows, or raise --query-memory",
                    ByteSize(limits.memory)
                )));
            }
            out.push(batch);
        }
        Ok(out)
    };
    let timed = async move {
        tokio::time::timeout(limits.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Sql(format!(
                    "the query ran past its time limit of {:?}; narrow it or raise --query-timeout",
                    limits.timeout
                )))
            })
    };
    sql_runtime()
        .spawn(timed)
        .await
        .map_err(|e| Error::Internal(format!("a query task failed: {e}")))?
}
