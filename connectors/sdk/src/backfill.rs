//! What `sluice backfill` asks of a source.

/// How a backfill narrows its source. Each field applies to the sources that
/// have the notion; a source refuses the ones it cannot honour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackfillOptions {
    /// Only objects whose path inside the source's folder starts with this.
    pub prefix: Option<String>,
    /// Only objects modified at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only objects modified before this time (Unix milliseconds).
    pub until_ms: Option<i64>,
    /// Kafka: read every partition from its earliest offset.
    pub from_beginning: bool,
    /// How many objects to read at once.
    pub concurrency: Option<usize>,
}

impl BackfillOptions {
    /// Whether an object modified at `ms` (Unix milliseconds) is in the window.
    pub fn in_window(&self, ms: i64) -> bool {
        self.since_ms.is_none_or(|s| ms >= s) && self.until_ms.is_none_or(|u| ms < u)
    }

    /// Whether `path` (inside the source's folder) is under the prefix.
    pub fn under_prefix(&self, path: &str) -> bool {
        self.prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p.trim_start_matches('/')))
    }
}

/// One object a bounded source would read: its URL (the document's `doc_id`)
/// and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub url: String,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::BackfillOptions;

    #[test]
    fn the_window_is_half_open_and_the_prefix_ignores_a_leading_slash() {
        let o = BackfillOptions {
            prefix: Some("/2024/".into()),
            since_ms: Some(10),
            until_ms: Some(20),
            ..Default::default()
        };
        assert!(!o.in_window(9) && o.in_window(10) && o.in_window(19) && !o.in_window(20));
        assert!(o.under_prefix("2024/a.md") && !o.under_prefix("2023/a.md"));
        assert!(BackfillOptions::default().under_prefix("anything"));
    }
}
