//! A statement's point of no return: the first write of a commit (or of a catalog marker). A
//! statement stopped before it — by `CANCEL QUERY` or its timeout — is abandoned and leaves
//! nothing visible; one stopped after it runs to its end, so that its answer tells the truth
//! about what was committed. The engine runs each statement inside [`watch`] with a flag of its
//! own, and every durable write of the log or the catalog calls [`reached`] first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static COMMITTING: Arc<AtomicBool>;
}

/// Runs `future` with `flag` raised at its first commit.
pub async fn watch<F: Future>(flag: Arc<AtomicBool>, future: F) -> F::Output {
    COMMITTING.scope(flag, future).await
}

/// Marks the running statement (if any) as committing.
pub fn reached() {
    let _ = COMMITTING.try_with(|flag| flag.store(true, Ordering::SeqCst));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_rises_only_inside_its_statement() {
        reached();
        let flag = Arc::new(AtomicBool::new(false));
        watch(Arc::clone(&flag), async {}).await;
        assert!(!flag.load(Ordering::SeqCst));
        watch(Arc::clone(&flag), async { reached() }).await;
        assert!(flag.load(Ordering::SeqCst));
    }
}
