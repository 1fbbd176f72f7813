//! `/health`: the server's status and the application's named checks.

use std::sync::Arc;

use super::Server;

pub(crate) type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What `/health` answers: a status and the named checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// `ok`, `failing` (a check failed) or `draining` (shutting down).
    pub status: &'static str,
    /// Connections open now.
    pub connections: u64,
    /// Each check by name: `ok`, or the failure's message.
    pub checks: std::collections::BTreeMap<String, String>,
}

impl Server {
    /// The server's health, as served at `/health`.
    pub fn health(&self) -> Health {
        let mut checks: std::collections::BTreeMap<String, String> = self
            .shared
            .health_checks
            .iter()
            .map(|(name, check)| (name.clone(), check().err().unwrap_or_else(|| "ok".into())))
            .collect();
        if let Some(engine) = self.shared.engine.health() {
            checks.insert("engine".into(), engine.err().unwrap_or_else(|| "ok".into()));
        }
        let status = if self.is_draining() {
            "draining"
        } else if checks.values().any(|v| v != "ok") {
            "failing"
        } else {
            "ok"
        };
        Health {
            status,
            connections: self.shared.conn_count() as u64,
            checks,
        }
    }
}
