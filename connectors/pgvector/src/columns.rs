//! Arrow columns → PostgreSQL columns, and row values for a binary COPY.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use chrono::{DateTime, Utc};
use sluice_connector_sdk::ConfigIssue;
use tokio_postgres::types::{ToSql, Type};

use crate::config::PgVectorSinkConfig;

/// Columns never stored: the change marker and raw document bytes.
const SKIPPED: &[&str] = &["op", "content"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    BigInt,
    Real,
    Double,
    Boolean,
    TimestampTz,
    Vector(usize),
}

impl PgType {
    fn of(dt: &DataType) -> Option<PgType> {
        Some(match dt {
            DataType::Utf8 | DataType::LargeUtf8 => PgType::Text,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => PgType::BigInt,
            DataType::Float32 => PgType::Real,
            DataType::Float64 => PgType::Double,
            DataType::Boolean => PgType::Boolean,
            DataType::Timestamp(_, _) => PgType::TimestampTz,
            DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float32 => {
                PgType::Vector(*n as usize)
            }
            _ => return None,
        })
    }

    pub fn ddl(self) -> String {
        match self {
            PgType::Text => "TEXT".into(),
            PgType::BigInt => "BIGINT".into(),
            PgType::Real => "REAL".into(),
            PgType::Double => "DOUBLE PRECISION".into(),
            PgType::Boolean => "BOOLEAN".into(),
            PgType::TimestampTz => "TIMESTAMPTZ".into(),
            PgType::Vector(n) => format!("vector({n})"),
        }
    }

    /// The wire type for COPY; `vector` is an extension type looked up at run time.
    pub fn wire(self, vector: &Type) -> Type {
        match self {
            PgType::Text => Type::TEXT,
            PgType::BigInt => Type::INT8,
            PgType::Real => Type::FLOAT4,
            PgType::Double => Type::FLOAT8,
            PgType::Boolean => Type::BOOL,
            PgType::TimestampTz => Type::TIMESTAMPTZ,
            PgType::Vector(_) => vector.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub index: usize,
    pub pg: PgType,
}

pub fn select(input: &Schema, config: &PgVectorSinkConfig) -> Result<Vec<Column>, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let mut out = Vec::new();
    let wanted: Vec<String> = match &config.columns {
        Some(list) => {
            let mut list = list.clone();
            for must in [&config.id_column, &config.doc_column, &config.embedding_column] {
                if !list.contains(must) {
                    list.insert(0, must.clone());
                }
            }
            // The lineage is kept whatever the list says.
            for f in input.fields() {
                let lineage = sluice_connector_sdk::lineage::COLUMNS.contains(&f.name().as_str());
                if lineage && !list.contains(f.name()) {
                    list.push(f.name().clone());
                }
            }
            list
        }
        None => input
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !SKIPPED.contains(&n.as_str()))
            .collect(),
    };
    for name in wanted {
        if name == "epoch" {
            issues.push(ConfigIssue::new(Some("columns"), "`epoch` is added by this sink"));
            continue;
        }
        let Ok((index, field)) = input.column_with_name(&name).ok_or(()) else {
            issues.push(ConfigIssue::new(
                Some("columns"),
                format!("the input has no column `{name}`"),
            ));
            continue;
        };
        match PgType::of(field.data_type()) {
            Some(pg) => out.push(Column { name, index, pg }),
            None if config.columns.is_some() => issues.push(ConfigIssue::new(
                Some("columns"),
                format!("`{name}` is {}, which this sink cannot store", field.data_type()),
            )),
            None => tracing::debug!("pgvector sink: leaving out `{name}` ({})", field.data_type()),
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// One value of a COPY row.
pub type Value = Box<dyn ToSql + Sync + Send>;

/// The value of `column` at `row`.
/// A value PostgreSQL cannot hold is the row's content, refused: a data error.
pub fn value(batch: &RecordBatch, column: &Column, row: usize) -> sluice_connector_sdk::Result<Value> {
    use sluice_connector_sdk::ConnectorError;
    let a = batch.column(column.index);
    if a.is_null(row) {
        return Ok(match column.pg {
            PgType::Text => Box::new(None::<String>),
            PgType::BigInt => Box::new(None::<i64>),
            PgType::Real => Box::new(None::<f32>),
            PgType::Double => Box::new(None::<f64>),
            PgType::Boolean => Box::new(None::<bool>),
            PgType::TimestampTz => Box::new(None::<DateTime<Utc>>),
            PgType::Vector(_) => Box::new(None::<pgvector::Vector>),
        });
    }
    Ok(match a.data_type() {
        DataType::Utf8 => Box::new(a.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Box::new(a.as_string::<i64>().value(row).to_string()),
        DataType::Int8 => Box::new(a.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Box::new(a.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Box::new(a.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Box::new(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Box::new(a.as_primitive::<UInt8Type>().value(row) as i64),
        DataType::UInt16 => Box::new(a.as_primitive::<UInt16Type>().value(row) as i64),
        DataType::UInt32 => Box::new(a.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(row);
            Box::new(
                i64::try_from(v).map_err(|_| {
                    ConnectorError::data(format!("`{}` value {v} is over BIGINT", column.name))
                })?,
            )
        }
        DataType::Float32 => Box::new(a.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Box::new(a.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Box::new(a.as_boolean().value(row)),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row) * 1_000_000,
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row) * 1_000,
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(row) / 1_000,
            };
            Box::new(
                DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
                    ConnectorError::data(format!("`{}`: timestamp out of range", column.name))
                })?,
            )
        }
        DataType::FixedSizeList(_, _) => {
            let list = a.as_fixed_size_list().value(row);
            Box::new(pgvector::Vector::from(
                list.as_primitive::<Float32Type>().values().to_vec(),
            ))
        }
        other => {
            return Err(ConnectorError::data(format!(
                "`{}`: cannot store {other}",
                column.name
            )))
        }
    })
}
