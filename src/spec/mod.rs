//! From pipeline YAML to a validated [`Plan`].
//!
//! 1. [`yaml`] parses the file into a tree that remembers line and column, and
//!    expands `${ENV}` / `${ENV:-default}` in values.
//! 2. [`de`] decodes each block into its raw config type. Unknown keys are refused,
//!    with a "did you mean" hint, and decoding goes on.
//! 3. [`compile`] checks what types cannot: names, references, and the Arrow schema
//!    after every stage (a SQL stage's schema comes from DataFusion).
//!
//! Every problem in the file is collected and reported at once, each with
//! `file:line:column`.

pub mod de;
mod diag;
mod lineage;
pub mod registry;
pub mod yaml;

mod compile;

pub use compile::{load_file, load_str};
pub use diag::{Diagnostic, Diagnostics};
