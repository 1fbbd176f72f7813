//! Graceful shutdown: drain in batches, let handlers finish, then close.

use std::time::Duration;

use crate::protocol::CloseReason;

use super::Server;

/// How [`Server::shutdown`] drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// How long running handlers may take, and how long the whole drain may take
    /// before the remaining connections are dropped. Default 10 s.
    pub deadline: Duration,
    /// Connections told to go away at once. Default: all of them.
    pub batch_size: usize,
    /// Pause between batches. Default 0.
    pub batch_interval: Duration,
    /// Clients are asked to wait a random time up to this before reconnecting,
    /// so they do not all return in the same instant. Default 5 s.
    pub reconnect_spread: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            batch_size: usize::MAX,
            batch_interval: Duration::ZERO,
            reconnect_spread: Duration::from_secs(5),
        }
    }
}

impl Server {
    /// Shuts down gracefully: stops accepting, tells clients to go away (`sl/close`
    /// with a spread-out `reconnect_after_ms`, then close 1001) in batches, lets
    /// running handlers finish up to the deadline, then drops what is left.
    pub async fn shutdown(&self, options: Shutdown) {
        let shared = &self.shared;
        shared
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        shared.stop_accepting.notify_waiters();
        let started = tokio::time::Instant::now();
        let signals = shared.signals();
        let spread = u32::try_from(options.reconnect_spread.as_millis()).unwrap_or(u32::MAX);
        for (i, batch) in signals.chunks(options.batch_size.max(1)).enumerate() {
            if i > 0 && !options.batch_interval.is_zero() {
                tokio::time::sleep(options.batch_interval).await;
            }
            for signal in batch {
                signal.close(CloseReason {
                    code: "going-away".into(),
                    message: "server shutting down".into(),
                    reconnect_after_ms: Some(if spread == 0 {
                        0
                    } else {
                        fastrand::u32(0..=spread)
                    }),
                });
            }
        }
        let wait_closed = async {
            while shared.conn_count() > 0 {
                let notified = shared.closed.notified();
                if shared.conn_count() == 0 {
                    break;
                }
                notified.await;
            }
        };
        let left = options.deadline.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left + Duration::from_secs(1), wait_closed).await;
        tracing::info!(target: "sente_lite", remaining = shared.conn_count(), "server shut down");
    }

    /// Waits for SIGTERM or Ctrl-C (SIGINT), then shuts down gracefully with
    /// `options`. The usual last line of a server's `main`.
    pub async fn shutdown_on_signal(&self, options: Shutdown) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => tracing::info!(target: "sente_lite", "SIGTERM: draining"),
                result = tokio::signal::ctrl_c() => {
                    result?;
                    tracing::info!(target: "sente_lite", "interrupt: draining");
                }
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        self.shutdown(options).await;
        Ok(())
    }

    /// Resolves when the server has shut down and every connection is closed.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if self.is_draining() && self.shared.conn_count() == 0 {
                return;
            }
            notified.await;
        }
    }
}
