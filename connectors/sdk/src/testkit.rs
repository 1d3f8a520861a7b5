//! Checks every sink must pass. A connector's own tests call these with a factory
//! for its sink and a reader that counts what the sink holds, through the sink's
//! own storage (never through sluice).

use std::future::Future;

use arrow::record_batch::RecordBatch;

use crate::{Result, Sink};

/// Runs the checkpoint contract against a sink:
/// 1. epoch 1 committed, epoch 2 committed but never checkpointed (a crash);
/// 2. a reopen with `committed = 1` must drop epoch 2;
/// 3. replaying epoch 2 twice must leave exactly one copy.
///
/// `count` returns the rows the sink's storage holds. `one` and `two` are the rows
/// of epochs 1 and 2; they must not share keys.
pub async fn check_replay_and_rollback<F, Fut, C, CFut>(
    mut make: F,
    mut count: C,
    one: RecordBatch,
    two: RecordBatch,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Box<dyn Sink>>>,
    C: FnMut() -> CFut,
    CFut: Future<Output = Result<usize>>,
{
    let (n1, n2) = (one.num_rows(), two.num_rows());
    let mut sink = make().await?;
    sink.open(0).await?;
    sink.write(1, one).await?;
    sink.commit(1).await?;
    sink.write(2, two.clone()).await?;
    sink.commit(2).await?;
    sink.close().await?;
    assert_eq!(count().await?, n1 + n2, "both epochs committed");

    let mut sink = make().await?;
    sink.open(1).await?;
    assert_eq!(count().await?, n1, "open(1) must roll back epoch 2");
    for _ in 0..2 {
        sink.write(2, two.clone()).await?;
        sink.commit(2).await?;
    }
    sink.close().await?;
    assert_eq!(
        count().await?,
        n1 + n2,
        "a replayed epoch must not duplicate rows"
    );
    Ok(())
}
