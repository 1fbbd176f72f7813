//! Soak: a sente-lite server under thousands of connections that come and go
//! (connect, subscribe, requests, publications, then a graceful close or a
//! dropped socket, and again), followed window by window: the server's
//! resident memory, its open files, its CPU, and the request latency the
//! clients see.
//!
//! - [`events`]: what the load's clients and the server exchange;
//! - [`window`]: what a load process reports each window;
//! - [`sample`]: the server process's memory, open files and CPU, from `/proc`;
//! - [`report`]: the windows merged into rows, the verdicts, the Markdown;
//! - [`chart`]: the curves, as SVG.
//!
//! The binaries: `soak` (the orchestrator), `soak_server` and `soak_load`.
//! How to run it and what each figure means: `docs/RELIABILITY.md`.

pub mod chart;
pub mod events;
pub mod report;
pub mod sample;
pub mod window;
