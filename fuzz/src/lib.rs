//! Coverage-guided fuzz targets of sente-lite, run with AFL++ on stable Rust
//! (`cargo afl`), and the same targets replayed over their committed corpora
//! by this crate's tests.
//!
//! Each target is a function of the input bytes that panics when an
//! invariant breaks: a decoder that reads back something other than what its
//! encoder wrote, the one-pass JSON decoder taking a frame the general one
//! refuses or reading it differently, a server that keeps a connection open
//! after its input ended. Everything else a hostile input can do must end in
//! an answer the protocol documents, never a panic.
//!
//! `scripts/fuzz` builds and runs them; `docs/RELIABILITY.md` records the
//! runs.

mod config;
mod frames;
mod one_pass;
mod routes;
mod seeds;
mod server;

pub use config::config;
pub use frames::{json_frame, postcard_frame};
pub use one_pass::json_one_pass;
pub use seeds::{Seed, seeds, spec_json_examples, spec_postcard_examples};
pub use server::{FRAME_SEPARATOR, session, session_bytes, upgrade};

/// A fuzz target: its name (that of its binary and corpus folder) and its function.
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics when an invariant breaks.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "json_frame",
        run: json_frame,
    },
    Target {
        name: "json_one_pass",
        run: json_one_pass,
    },
    Target {
        name: "postcard_frame",
        run: postcard_frame,
    },
    Target {
        name: "session",
        run: session,
    },
    Target {
        name: "upgrade",
        run: upgrade,
    },
    Target {
        name: "config",
        run: config,
    },
];

/// Runs `target` on each file named on the command line, saying which one it
/// is on first, so that a panic names the input that caused it.
pub fn replay_files(target: fn(&[u8])) -> std::process::ExitCode {
    let paths: Vec<_> = std::env::args_os().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: TARGET FILE... (runs the fuzz target on each file)");
        return std::process::ExitCode::FAILURE;
    }
    for path in paths {
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("{}: {e}", path.to_string_lossy());
                return std::process::ExitCode::FAILURE;
            }
        };
        eprintln!("{}", path.to_string_lossy());
        target(&data);
    }
    std::process::ExitCode::SUCCESS
}
