//! The `sql` stage: a DataFusion query over the table `input`, one batch at a time.
//!
//! The query is parsed, optimized and turned into a physical plan once, at build
//! time. The plan's scan reads "the current batch" from the task context, so each
//! batch only pays for execution, and batches can run concurrently.

use std::fmt;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{exec_err, Result as DfResult, SchemaError};
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::Deserialize;
use sluice_connector_sdk::{ConfigIssue, PlanContext};

use super::{StageConfig, StageContext, StageOutput, StageRunner, Transform};
use sluice_connector_sdk::{ConnectorError, Result};

/// ```yaml
/// - type: sql
///   query: SELECT *, length(text) AS chars FROM input WHERE token_count > 20
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct SqlConfig {
    pub query: String,
}

/// The batch a plan execution reads, passed through the task context.
#[derive(Debug)]
struct CurrentBatch(RecordBatch);

/// The `input` table: its scan yields the current batch.
#[derive(Debug)]
struct InputTable {
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for InputTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(InputExec {
            schema,
            projection: projection.cloned(),
            properties: Arc::new(properties),
        }))
    }
}

/// Leaf of the plan: emits the current batch, projected.
#[derive(Debug)]
struct InputExec {
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for InputExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "InputExec")
    }
}

impl ExecutionPlan for InputExec {
    fn name(&self) -> &str {
        "InputExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let Some(current) = context.session_config().get_extension::<CurrentBatch>() else {
            return exec_err!("the sql stage ran without a current batch");
        };
        let batch = match &self.projection {
            Some(p) => current.0.project(p)?,
            None => current.0.clone(),
        };
        Ok(Box::pin(MemoryStream::try_new(
            vec![batch],
            self.schema.clone(),
            None,
        )?))
    }
}

fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_repartition_joins(false)
        .with_repartition_aggregations(false)
        .with_repartition_windows(false)
        .with_repartition_sorts(false);
    SessionContext::new_with_config(config)
}

/// A query planned against `input`: the physical plan, and a session to run it.
pub struct PlannedQuery {
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
}

impl PlannedQuery {
    /// Plan `query` over a table `input` of `schema`. Only a single SELECT is allowed.
    pub fn new(query: &str, schema: SchemaRef) -> DfResult<Self> {
        let ctx = session();
        ctx.register_table("input", Arc::new(InputTable { schema }))?;
        let plan = futures::executor::block_on(async {
            let df = ctx.sql_with_options(query, crate::inspect::read_only()).await?;
            df.create_physical_plan().await
        })?;
        Ok(PlannedQuery { ctx, plan })
    }

    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Run the plan over one batch.
    pub fn run(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let mut config = self.ctx.copied_config();
        config.set_extension(Arc::new(CurrentBatch(batch)));
        let task = Arc::new(TaskContext::from(&self.ctx.state()).with_session_config(config));
        let fut = collect(self.plan.clone(), task);
        // Called from the blocking pool, where a runtime handle may block; benches and
        // tests may call it with no runtime at all.
        let batches = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(fut),
            Err(_) => futures::executor::block_on(fut),
        }?;
        Ok(concat_batches(&self.plan.schema(), &batches)?)
    }
}

impl StageConfig for SqlConfig {
    fn plan(
        &self,
        _ctx: &PlanContext,
        input: &SchemaRef,
    ) -> std::result::Result<SchemaRef, Vec<ConfigIssue>> {
        PlannedQuery::new(&self.query, input.clone())
            .map(|q| q.schema())
            .map_err(|e| {
                let mut issue = ConfigIssue::new(Some("query"), e.to_string());
                // No field named txet → did you mean `text`?
                let missing = match e.find_root() {
                    DataFusionError::SchemaError(s, _) => match s.as_ref() {
                        SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let columns = input.fields().iter().map(|f| f.name().as_str());
                if let Some(hint) = missing.and_then(|m| crate::spec::de::did_you_mean(&m, columns)) {
                    issue = issue.with_hint(hint);
                }
                vec![issue]
            })
    }

    fn build(&self, ctx: &StageContext) -> Result<StageRunner> {
        let query = PlannedQuery::new(&self.query, ctx.input.clone())
            .map_err(|e| ConnectorError::internal("planning the query again").with_source(e))?;
        if query.schema().fields() != ctx.output.fields() {
            return Err(ConnectorError::internal(format!(
                "stage `{}`: schema changed since planning",
                ctx.name
            )));
        }
        Ok(StageRunner::PerBatch(Arc::new(SqlTransform { query })))
    }
}

struct SqlTransform {
    query: PlannedQuery,
}

impl Transform for SqlTransform {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
        Ok(StageOutput::new(self.query.run(batch).map_err(failed)?))
    }
}

/// A query that planned can still fail on a batch: on what the data holds (a
/// cast of a value that is not a number: the user's to fix, by variant) or
/// in DataFusion itself.
fn failed(e: DataFusionError) -> ConnectorError {
    let e = crate::Error::from(e);
    let wrapped = if e.is_user_error() {
        ConnectorError::user("the query failed on a batch")
    } else {
        ConnectorError::internal("the query failed on a batch")
    };
    wrapped.with_source(e)
}
