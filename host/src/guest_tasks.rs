//! Counts the guest tasks still running (a guest may work on after it answered, e.g. sending
//! the SMS), so that the host can wait for them before it stops.

use std::sync::Arc;

use tokio::sync::watch;

/// Counts running guest tasks so callers can wait for after-response work.
#[derive(Clone)]
pub(crate) struct GuestTasks {
    active: Arc<watch::Sender<usize>>,
}

impl Default for GuestTasks {
    fn default() -> Self {
        Self {
            active: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl GuestTasks {
    pub(crate) fn enter(&self) -> TaskGuard {
        self.active.send_modify(|n| *n += 1);
        TaskGuard {
            active: Arc::clone(&self.active),
        }
    }

    pub(crate) fn active(&self) -> usize {
        *self.active.borrow()
    }

    pub(crate) async fn idle(&self) {
        let mut active = self.active.subscribe();
        // Fails only when the sender is gone, which `self` prevents.
        let _ = active.wait_for(|n| *n == 0).await;
    }
}

/// Marks one guest task as running until dropped (also on panic or cancellation).
pub(crate) struct TaskGuard {
    active: Arc<watch::Sender<usize>>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}
