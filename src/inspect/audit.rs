//! Stage audit tables ([`AuditTable`]): the rows a stage keeps of what it
//! did (the guard's findings), stamped with the stage and the epoch, written
//! like a tap to `state_dir/audit/<pipeline>/<stage>/` and shown by
//! `sluice sql` under the table's name, every stage that keeps one together.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use sluice_connector_sdk::stage::AuditTable;
use sluice_connector_sdk::Epoch;

use crate::plan::Plan;
use crate::{Error, Result};

/// The columns the runtime adds to a stage's audit rows.
pub const STAGE: &str = "stage";
pub const EPOCH: &str = "epoch";

/// A stage's audit columns with `stage` and `epoch` added.
pub fn stamped_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(STAGE, DataType::Utf8, false));
    fields.push(Field::new(EPOCH, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// `rows` with the stage's name and the epoch they were made in.
pub fn stamp(rows: &RecordBatch, stage: &str, epoch: Epoch) -> Result<RecordBatch> {
    let n = rows.num_rows();
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![stage; n])) as ArrayRef);
    columns.push(Arc::new(UInt64Array::from(vec![epoch; n])) as ArrayRef);
    Ok(RecordBatch::try_new(stamped_schema(&rows.schema()), columns)?)
}

/// Register every audit table of `plan`: one table per name, over the
/// folders of every stage that keeps it.
pub fn register(ctx: &SessionContext, plan: &Plan) -> Result<()> {
    let mut tables: BTreeMap<&str, (&AuditTable, Vec<ListingTableUrl>)> = BTreeMap::new();
    for stage in &plan.stages {
        let Some(audit) = &stage.audit else { continue };
        let url = ListingTableUrl::parse(super::folder_url(&plan.audit_dir(&stage.name))?)?;
        tables
            .entry(audit.name.as_str())
            .or_insert((audit, Vec::new()))
            .1
            .push(url);
    }
    for (name, (audit, urls)) in tables {
        if ctx.table_exist(name)? {
            return Err(Error::Sql(format!(
                "the audit table `{name}` has the name of another table; rename the stage or sink"
            )));
        }
        super::register_parquet_folders(ctx, name, urls, stamped_schema(&audit.schema))?;
    }
    Ok(())
}
