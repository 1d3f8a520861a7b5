//! `--where`: a SQL predicate over a sink's metadata columns, parsed into the
//! store-neutral [`Filter`] that the store applies before it ranks.
//!
//! Allowed: a column compared with a value (`=`, `!=`, `<>`, `<`, `<=`, `>`,
//! `>=`), `IN (...)`, `BETWEEN ... AND ...`, `LIKE`, `IS [NOT] NULL`,
//! `IS [NOT] TRUE|FALSE`, a boolean column on its own, and `AND`, `OR`, `NOT`
//! and parentheses over those. Every column must be one of the table's, and
//! every value must suit its column's type, so what reaches the store is
//! checked: no function, no subquery, no second column.

use arrow::datatypes::{DataType, Schema};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use sluice_connector_sdk::read::filter::{CmpOp, Filter, Literal};

use crate::{Error, Result};

/// The longest predicate accepted.
const MAX_LEN: usize = 4096;

fn refused(what: impl std::fmt::Display) -> Error {
    Error::Usage(format!("--where: {what}"))
}

/// Parse `text` against the columns of `schema`.
pub fn parse(text: &str, schema: &Schema) -> Result<Filter> {
    if text.len() > MAX_LEN {
        return Err(refused(format!("longer than {MAX_LEN} bytes")));
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| refused(format!("cannot parse `{text}`: {e}")))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| refused(format!("cannot parse `{text}`: {e}")))?;
    if parser.peek_token().token != Token::EOF {
        return Err(refused(format!(
            "unexpected `{}` after the predicate",
            parser.peek_token().token
        )));
    }
    Check { schema }.filter(&expr)
}

struct Check<'a> {
    schema: &'a Schema,
}

const ALLOWED: &str =
    "use a column compared with a value, IN, BETWEEN, LIKE, IS NULL, a boolean column, and AND, OR, NOT";

impl Check<'_> {
    fn filter(&self, e: &Expr) -> Result<Filter> {
        match e {
            Expr::Nested(inner) => self.filter(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Filter::And(
                    Box::new(self.filter(left)?),
                    Box::new(self.filter(right)?),
                )),
                BinaryOperator::Or => Ok(Filter::Or(
                    Box::new(self.filter(left)?),
                    Box::new(self.filter(right)?),
                )),
                _ => self.compare(left, op, right),
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Filter::Not(Box::new(self.filter(expr)?))),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let column = self.column(e, Some(&DataType::Boolean))?;
                Ok(is_bool(column, true, false))
            }
            Expr::IsTrue(c) | Expr::IsFalse(c) | Expr::IsNotTrue(c) | Expr::IsNotFalse(c) => {
                let column = self.column(c, Some(&DataType::Boolean))?;
                let want = matches!(e, Expr::IsTrue(_) | Expr::IsNotTrue(_));
                let negated = matches!(e, Expr::IsNotTrue(_) | Expr::IsNotFalse(_));
                Ok(is_bool(column, want, negated))
            }
            Expr::IsNull(c) | Expr::IsNotNull(c) => Ok(Filter::IsNull {
                column: self.column(c, None)?,
                negated: matches!(e, Expr::IsNotNull(_)),
            }),
            Expr::InList { expr, list, negated } => {
                let column = self.column(expr, None)?;
                let values = list
                    .iter()
                    .map(|v| self.value(&column, v))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Filter::In {
                    column,
                    values,
                    negated: *negated,
                })
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let column = self.column(expr, None)?;
                Ok(Filter::Between {
                    low: self.value(&column, low)?,
                    high: self.value(&column, high)?,
                    column,
                    negated: *negated,
                })
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => {
                let column = self.column(expr, Some(&DataType::Utf8))?;
                match self.value(&column, pattern)? {
                    Literal::Text(pattern) => Ok(Filter::Like {
                        column,
                        pattern,
                        negated: *negated,
                    }),
                    _ => Err(refused("LIKE takes a quoted pattern")),
                }
            }
            other => Err(refused(format!("`{other}` is not allowed; {ALLOWED}"))),
        }
    }

    fn compare(&self, left: &Expr, op: &BinaryOperator, right: &Expr) -> Result<Filter> {
        let op = match op {
            BinaryOperator::Eq => CmpOp::Eq,
            BinaryOperator::NotEq => CmpOp::NotEq,
            BinaryOperator::Lt => CmpOp::Lt,
            BinaryOperator::LtEq => CmpOp::LtEq,
            BinaryOperator::Gt => CmpOp::Gt,
            BinaryOperator::GtEq => CmpOp::GtEq,
            other => {
                return Err(refused(format!(
                    "the operator `{other}` is not allowed; {ALLOWED}"
                )))
            }
        };
        // `5 < n` reads as `n > 5`.
        let (column, value, op) = if is_column(left) {
            (left, right, op)
        } else {
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::LtEq => CmpOp::GtEq,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::GtEq => CmpOp::LtEq,
                same => same,
            };
            (right, left, flipped)
        };
        let column = self.column(column, None)?;
        Ok(Filter::Compare {
            value: self.value(&column, value)?,
            column,
            op,
        })
    }

    /// The column `e` names, which must exist (and be of `kind`, if given).
    fn column(&self, e: &Expr, kind: Option<&DataType>) -> Result<String> {
        let name = match e {
            Expr::Identifier(id) => id.value.clone(),
            Expr::CompoundIdentifier(parts) if parts.len() == 1 => parts[0].value.clone(),
            other => return Err(refused(format!("expected a column, found `{other}`; {ALLOWED}"))),
        };
        let Ok(field) = self.schema.field_with_name(&name) else {
            let mut names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .filter(|f| filterable(f.data_type()))
                .map(|f| f.name().as_str())
                .collect();
            names.sort();
            return Err(refused(format!(
                "no column `{name}`; the columns are {}",
                names.join(", ")
            )));
        };
        let t = field.data_type();
        if !filterable(t) {
            return Err(refused(format!("`{name}` ({t}) cannot be filtered on")));
        }
        match kind {
            Some(DataType::Boolean) if t != &DataType::Boolean => {
                Err(refused(format!("`{name}` is {t}, not a boolean")))
            }
            Some(DataType::Utf8) if !is_text(t) => Err(refused(format!("`{name}` is {t}, not text"))),
            _ => Ok(name),
        }
    }

    /// The literal `e`, checked against the type of `column`.
    fn value(&self, column: &str, e: &Expr) -> Result<Literal> {
        let literal = literal(e)?;
        let t = self
            .schema
            .field_with_name(column)
            .map(|f| f.data_type().clone())
            .map_err(|_| refused(format!("no column `{column}`")))?;
        let fits = match (&literal, &t) {
            (Literal::Text(_), t) if is_text(t) => true,
            (Literal::Text(s), DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) => is_time(s),
            (Literal::Int(_) | Literal::Float(_), t) => t.is_numeric(),
            (Literal::Bool(_), DataType::Boolean) => true,
            _ => false,
        };
        if fits {
            Ok(literal)
        } else {
            Err(refused(format!(
                "`{e}` does not suit `{column}` ({t}); compare text with 'quoted text', numbers with numbers, times with '2024-01-31' or '2024-01-31T12:00:00Z'"
            )))
        }
    }
}

fn is_column(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn filterable(t: &DataType) -> bool {
    is_text(t)
        || t.is_numeric()
        || matches!(
            t,
            DataType::Boolean | DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        )
}

/// A date or a date and time, as the stores parse them.
fn is_time(s: &str) -> bool {
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s).is_ok()
        || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn is_bool(column: String, want: bool, negated: bool) -> Filter {
    Filter::Compare {
        column,
        op: if negated { CmpOp::NotEq } else { CmpOp::Eq },
        value: Literal::Bool(want),
    }
}

fn literal(e: &Expr) -> Result<Literal> {
    let (negative, e) = match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        other => (false, other),
    };
    let Expr::Value(v) = e else {
        return Err(refused(format!("expected a value, found `{e}`; {ALLOWED}")));
    };
    let number = |n: &str| -> Result<Literal> {
        let n = if negative { format!("-{n}") } else { n.to_string() };
        if let Ok(i) = n.parse::<i64>() {
            return Ok(Literal::Int(i));
        }
        match n.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Literal::Float(f)),
            _ => Err(refused(format!("`{n}` is not a number sluice can compare"))),
        }
    };
    match (&v.value, negative) {
        (Value::Number(n, _), _) => number(n),
        (Value::SingleQuotedString(s), false) if !s.contains('\0') => Ok(Literal::Text(s.clone())),
        (Value::SingleQuotedString(_), false) => Err(refused("text with a NUL character")),
        (Value::Boolean(b), false) => Ok(Literal::Bool(*b)),
        (other, _) => Err(refused(format!(
            "`{other}` is not allowed as a value; use 'single-quoted text', a number, TRUE or FALSE"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};
    use sluice_connector_sdk::read::filter::SqlDialect;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, true),
            Field::new("token_count", DataType::Int64, true),
            Field::new("from_pdf", DataType::Boolean, true),
            Field::new(
                "modified_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "embedding",
                DataType::FixedSizeList(
                    std::sync::Arc::new(Field::new("item", DataType::Float32, true)),
                    3,
                ),
                true,
            ),
        ])
    }

    fn sql(text: &str) -> String {
        parse(text, &schema()).unwrap().to_sql(&SqlDialect::ANSI)
    }

    fn err(text: &str) -> String {
        parse(text, &schema()).unwrap_err().to_string()
    }

    #[test]
    fn allowed_forms_become_filters() {
        assert_eq!(sql("doc_id = 'a.md'"), "(\"doc_id\" = 'a.md')");
        assert_eq!(sql("5 < token_count"), "(\"token_count\" > 5)");
        assert_eq!(
            sql("(from_pdf OR token_count BETWEEN -1 AND 2.5) AND NOT doc_id LIKE 'x%'"),
            "(((\"from_pdf\" = TRUE) OR (\"token_count\" BETWEEN -1 AND 2.5)) AND (NOT (\"doc_id\" LIKE 'x%')))"
        );
        assert_eq!(
            sql("doc_id NOT IN ('a', 'b') AND modified_at >= '2024-01-31'"),
            "((\"doc_id\" NOT IN ('a', 'b')) AND (\"modified_at\" >= '2024-01-31'))"
        );
        assert_eq!(sql("from_pdf IS NOT TRUE"), "(\"from_pdf\" <> TRUE)");
        assert_eq!(sql("doc_id IS NULL"), "(\"doc_id\" IS NULL)");
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (text, says) in [
            (
                "nope = 1",
                "no column `nope`; the columns are doc_id, from_pdf, modified_at, token_count",
            ),
            ("embedding IS NULL", "cannot be filtered on"),
            ("doc_id = 3", "does not suit `doc_id`"),
            ("token_count = 'x'", "does not suit"),
            ("modified_at > 'yesterday'", "does not suit"),
            ("doc_id = doc_id", "expected a value"),
            ("1 = 1", "expected a column"),
            ("lower(doc_id) = 'a'", "expected a column"),
            ("doc_id IN (SELECT doc_id FROM t)", "not allowed"),
            ("doc_id = 'a'; DROP TABLE t", "unexpected `;`"),
            ("doc_id = 'a' --", ""),
            ("token_count + 1 > 2", "expected a column"),
            ("token_count > 1e999", "not a number"),
            ("doc_id", "not a boolean"),
            ("doc_id =", "cannot parse"),
        ] {
            match parse(text, &schema()) {
                Ok(f) if says.is_empty() => assert_eq!(f.columns(), vec!["doc_id"], "{text}"),
                Ok(f) => panic!("{text} passed as {f:?}"),
                Err(e) => assert!(e.to_string().contains(says), "{text}: {e}"),
            }
        }
        let deep = format!("{}doc_id = 'a'{}", "(".repeat(500), ")".repeat(500));
        assert!(
            err(&deep).contains("--where"),
            "deep nesting is refused, not a stack overflow"
        );
        assert!(err(&"x".repeat(5000)).contains("longer than"));
    }
}
