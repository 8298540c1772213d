//! Bounded capacity: at most `max_in_flight` key-store calls at once, at most `max_queue`
//! requests waiting for one (more are answered ThrottlingException at once rather than left
//! to time out in AWS KMS's 250 ms), and a deadline over the wait plus the call
//! (DependencyTimeoutException).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::error::{err, ErrorName, XksError};

/// The proxy's capacity.
#[derive(Debug, Clone)]
pub struct Capacity {
    admit: Arc<Semaphore>,
    work: Arc<Semaphore>,
    timeout: Duration,
}

impl Capacity {
    /// Capacity for these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            admit: Arc::new(Semaphore::new(limits.max_in_flight + limits.max_queue)),
            work: Arc::new(Semaphore::new(limits.max_in_flight)),
            timeout: limits.backend_timeout,
        }
    }

    /// Run one key-store step within the limits.
    pub async fn run<T, F>(&self, step: F) -> Result<T, XksError>
    where
        F: Future<Output = Result<T, XksError>>,
    {
        let Ok(_admitted) = self.admit.try_acquire() else {
            return Err(err(
                ErrorName::Throttling,
                "the proxy's request queue is full; retry later",
            ));
        };
        let work = async {
            let _slot = self
                .work
                .acquire()
                .await
                .map_err(|_| err(ErrorName::Internal, "the proxy is shutting down"))?;
            step.await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(err(
                ErrorName::DependencyTimeout,
                format!(
                    "the key store did not answer within {} ms",
                    self.timeout.as_millis()
                ),
            )),
        }
    }
}
