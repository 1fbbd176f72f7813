//! Writes the TypeScript declarations of the chat's events for the JavaScript client.
//!
//! Run with `cargo run -p sente-lite-examples --example ts_export -- out/`: it
//! writes `out/events.d.ts`, with a type per payload and reply and the `Events`
//! map keyed by event id (the chat's events and sente-lite's own
//! `telemetry/batch`), and `out/events.schema.json`, the shapes of the chat's
//! events that the schema hash is computed from. A page then types its client
//! with the first, and gives it the second to learn when the server's events
//! differ from the ones it was built with:
//!
//! ```ts
//! import { Client } from "./sente-lite.js";
//! import type { Events } from "./out/events.js";
//! import schema from "./out/events.schema.json" with { type: "json" };
//! const client = new Client<Events>("/ws?name=ada", {
//!   schema,
//!   onSchemaMismatch: (m) => console.warn("server events differ:", m.differences),
//! });
//! const joined = await client.request("chat/join", { room: "lobby" }); // Joined
//! ```
//!
//! It fails, naming them, when an event's types do not implement `ts_rs::TS`.

// Only the types are used here.
#[allow(dead_code)]
#[path = "chat_events.rs"]
mod chat_events;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Writes `events.d.ts` and `events.schema.json` for the chat's events.
#[derive(Parser)]
struct Args {
    /// The directory to write the files into (created when missing).
    out_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bindings = sente_lite::typescript::bindings();
    if !bindings.errors().is_empty() {
        for error in bindings.errors() {
            eprintln!("error: {error}");
        }
        return ExitCode::FAILURE;
    }
    let schema = sente_lite::schema::Description::of_this_program();
    let written = bindings
        .write_to(&args.out_dir)
        .and_then(|path| Ok((path, schema.write_to(&args.out_dir)?)));
    match written {
        Ok((path, schema_path)) => {
            println!(
                "wrote {} ({} events, {} types) and {} (schema hash {})",
                path.display(),
                bindings.events().len(),
                bindings.type_names().count(),
                schema_path.display(),
                schema.schema_hash,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: cannot write into {}: {error}",
                args.out_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
