//! Parsers that can loop, panic or go quadratic on hostile input (PDF, HTML) run
//! on their own thread inside `catch_unwind`, with a deadline. A document past the
//! deadline is given up on; its thread is left to finish on its own, and what it
//! holds is freed when it does.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use super::panic_message;

/// The name of the threads parsers run on (the panic hook keeps their panics quiet).
pub const THREAD_NAME: &str = "sluice-parser";

/// Run `parse` on a parser thread; `what` names the parser in errors, e.g. `PDF`.
pub fn run<T: Send + 'static>(
    what: &'static str,
    timeout: Duration,
    parse: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(parse)));
        })
        .map_err(|e| format!("cannot start the {what} parser thread: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(format!("{what} parser panicked: {}", panic_message(&*panic))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("{what} parser timed out after {timeout:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{what} parser thread died")),
    }
}
