//! Chaos across processes: a harness that runs sente-lite servers and their
//! clients (native Rust and Node.js) as separate processes, kills the servers
//! with SIGKILL and restarts them while traffic flows, and then checks every
//! client's ledger against what the servers recorded.
//!
//! - [`events`]: the events the server and the clients exchange;
//! - [`ledger`]: what each client process reports when it is done;
//! - [`records`]: what each server process appended to its record file;
//! - [`audit`]: the ledgers checked against the records, into counts;
//! - [`report`]: the counts, printed as a table;
//! - [`pace`]: how fast clients send.
//!
//! The binaries: `chaos` (the orchestrator), `chaos_server` and
//! `chaos_client`; the Node client is `chaos/node_client.mjs`. How to run it
//! and what each count means: `docs/reliability-chaos.md`.

pub mod audit;
pub mod events;
pub mod ledger;
pub mod pace;
pub mod records;
pub mod report;
