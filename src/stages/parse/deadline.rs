//! Where parser workers are not available (a library user, a bench), parsers
//! that can loop, panic or go quadratic on hostile input (PDF, HTML) run on
//! their own thread inside `catch_unwind`, with a deadline. A document past the
//! deadline is given up on; its thread is left to finish on its own, and what
//! it holds is freed when it does. At most [`MAX_RUNNING`] such threads live at
//! once: past that, documents are refused rather than threads piling up. The
//! `sluice` binary isolates parsers in processes instead ([`super::worker`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use super::ParseError;

/// The name of the threads parsers run on (the panic hook keeps their panics quiet).
pub const THREAD_NAME: &str = "sluice-parser";
/// How many parser threads may run at once, those past their deadline included.
pub const MAX_RUNNING: usize = 16;

static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Run `parse` on a parser thread; `what` names the parser in errors, e.g. `PDF`.
pub fn run<T: Send + 'static>(
    what: &'static str,
    timeout: Duration,
    parse: impl FnOnce() -> Result<T, ParseError> + Send + 'static,
) -> Result<T, ParseError> {
    use std::sync::atomic::Ordering;
    if RUNNING.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return Err(ParseError::Busy {
            parser: what,
            running: MAX_RUNNING,
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(parse)));
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return Err(ParseError::Thread {
            parser: what,
            source: e,
        });
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(ParseError::panicked(Some(what), &*panic)),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ParseError::TimedOut {
            parser: what,
            timeout,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(ParseError::ThreadDied { parser: what }),
    }
}
