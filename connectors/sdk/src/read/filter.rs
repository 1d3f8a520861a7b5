//! A filter on a table's columns, which the store applies before it ranks
//! (so `k` rows that match come back, not the matching few of the top `k`).
//!
//! The engine builds a [`Filter`] from what a user typed (and checks its
//! columns against the table); a store renders it in its own SQL with
//! [`Filter::to_sql`], quoting identifiers and text its own way. Values are
//! never copied from the user's text: numbers are printed from their parsed
//! value and text goes through the store's quoting.
//!
//! ```
//! use sluice_connector_sdk::read::filter::{CmpOp, Filter, Literal, SqlDialect};
//! let f = Filter::And(
//!     Box::new(Filter::Compare { column: "lang".into(), op: CmpOp::Eq, value: Literal::Text("it's".into()) }),
//!     Box::new(Filter::IsNull { column: "title".into(), negated: true }),
//! );
//! assert_eq!(f.to_sql(&SqlDialect::ANSI), r#"(("lang" = 'it''s') AND ("title" IS NOT NULL))"#);
//! assert_eq!(f.columns(), vec!["lang", "title"]);
//! ```

/// A value in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Int(i64),
    /// Always finite.
    Float(f64),
    Bool(bool),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// A predicate over one table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        column: String,
        op: CmpOp,
        value: Literal,
    },
    In {
        column: String,
        values: Vec<Literal>,
        negated: bool,
    },
    Between {
        column: String,
        low: Literal,
        high: Literal,
        negated: bool,
    },
    Like {
        column: String,
        pattern: String,
        negated: bool,
    },
    IsNull {
        column: String,
        negated: bool,
    },
}

/// How a store writes identifiers and text in its SQL.
#[derive(Debug, Clone, Copy)]
pub struct SqlDialect {
    pub quote_ident: fn(&str) -> String,
    pub quote_text: fn(&str) -> String,
}

fn double_quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl SqlDialect {
    /// `"name"` and `'text'`, each quote doubled.
    pub const ANSI: SqlDialect = SqlDialect {
        quote_ident: double_quoted,
        quote_text: single_quoted,
    };
}

impl Filter {
    /// The filter as a parenthesized SQL boolean expression.
    pub fn to_sql(&self, d: &SqlDialect) -> String {
        let lit = |l: &Literal| match l {
            Literal::Text(s) => (d.quote_text)(s),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => format!("{f:?}"),
            Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        };
        let col = |c: &str| (d.quote_ident)(c);
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Filter::And(a, b) => format!("({} AND {})", a.to_sql(d), b.to_sql(d)),
            Filter::Or(a, b) => format!("({} OR {})", a.to_sql(d), b.to_sql(d)),
            Filter::Not(a) => format!("(NOT {})", a.to_sql(d)),
            Filter::Compare { column, op, value } => {
                format!("({} {} {})", col(column), op.sql(), lit(value))
            }
            Filter::In {
                column,
                values,
                negated,
            } => {
                let list: Vec<String> = values.iter().map(lit).collect();
                format!("({} {}IN ({}))", col(column), not(*negated), list.join(", "))
            }
            Filter::Between {
                column,
                low,
                high,
                negated,
            } => format!(
                "({} {}BETWEEN {} AND {})",
                col(column),
                not(*negated),
                lit(low),
                lit(high)
            ),
            Filter::Like {
                column,
                pattern,
                negated,
            } => format!(
                "({} {}LIKE {})",
                col(column),
                not(*negated),
                (d.quote_text)(pattern)
            ),
            Filter::IsNull { column, negated } => {
                format!("({} IS {}NULL)", col(column), not(*negated))
            }
        }
    }

    /// The columns the filter reads, in order of appearance.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut out = a.columns();
                out.extend(b.columns());
                out
            }
            Filter::Not(a) => a.columns(),
            Filter::Compare { column, .. }
            | Filter::In { column, .. }
            | Filter::Between { column, .. }
            | Filter::Like { column, .. }
            | Filter::IsNull { column, .. } => vec![column.as_str()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_renders_with_the_dialects_quoting() {
        let c = || "a\"b".to_string();
        let f = Filter::Or(
            Box::new(Filter::Not(Box::new(Filter::In {
                column: c(),
                values: vec![Literal::Int(-3), Literal::Float(0.5), Literal::Bool(false)],
                negated: true,
            }))),
            Box::new(Filter::And(
                Box::new(Filter::Between {
                    column: c(),
                    low: Literal::Text("x'); DROP TABLE t; --".into()),
                    high: Literal::Float(1e20),
                    negated: false,
                }),
                Box::new(Filter::Like {
                    column: c(),
                    pattern: "%o'k%".into(),
                    negated: false,
                }),
            )),
        );
        assert_eq!(
            f.to_sql(&SqlDialect::ANSI),
            "((NOT (\"a\"\"b\" NOT IN (-3, 0.5, FALSE))) OR ((\"a\"\"b\" BETWEEN 'x''); DROP TABLE t; --' AND 1e20) AND (\"a\"\"b\" LIKE '%o''k%')))"
        );
        assert_eq!(f.columns().len(), 3);
    }
}
