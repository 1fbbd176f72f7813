//! How fast a client sends: the same flags on the orchestrator (for every
//! client) and on each client process.

/// The time between a client's messages of each kind.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Pace {
    /// Milliseconds between a client's one-way events.
    #[arg(long, default_value_t = 25)]
    pub event_every_ms: u64,
    /// Milliseconds between a client's requests (each waits on its own).
    #[arg(long, default_value_t = 50)]
    pub request_every_ms: u64,
    /// Milliseconds between a publisher's publications (one after the other).
    #[arg(long, default_value_t = 40)]
    pub publish_every_ms: u64,
}

impl Pace {
    /// The flags that give a client process this pace.
    pub fn to_args(self) -> Vec<String> {
        [
            ("--event-every-ms", self.event_every_ms),
            ("--request-every-ms", self.request_every_ms),
            ("--publish-every-ms", self.publish_every_ms),
        ]
        .into_iter()
        .flat_map(|(flag, ms)| [flag.to_owned(), ms.to_string()])
        .collect()
    }
}
