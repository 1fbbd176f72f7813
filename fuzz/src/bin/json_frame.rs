//! Fuzz target `json_frame` (see the crate docs). Built by `cargo afl build` it is
//! an AFL++ target, run by `scripts/fuzz`; a plain build runs the target on
//! each file named on its command line, to reproduce a finding:
//! `cargo run -p sente-lite-fuzz --bin json_frame -- FILE...`.

#[cfg(fuzzing)]
fn main() {
    afl::fuzz!(|data: &[u8]| sente_lite_fuzz::json_frame(data));
}

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    sente_lite_fuzz::replay_files(sente_lite_fuzz::json_frame)
}
