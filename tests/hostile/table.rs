//! The hostile matrix as a Markdown table, built from the case list the test
//! runs, and its section of `docs/RELIABILITY.md` around it.

use std::fmt::Write as _;

use super::cases::{Case, SOME};

/// One case as it ran.
pub(crate) struct Row<'a> {
    /// The case.
    pub(crate) case: &'a Case,
    /// What the server answered, in the form of [`Case::answer`].
    pub(crate) observed: String,
}

/// A table cell: no pipes, no line breaks, long texts cut.
fn cell(text: &str) -> String {
    let mut text = text.replace('|', "\\|").replace('\n', " ");
    if text.chars().count() > 160 {
        text = text.chars().take(157).collect::<String>() + "…`";
    }
    text
}

/// The counters a case moves, as `name +n`.
pub(crate) fn counted(case: &Case) -> String {
    let parts: Vec<String> = case
        .counted
        .iter()
        .map(|(name, n)| match *n {
            SOME => format!("`{name}` +n"),
            n => format!("`{name}` +{n}"),
        })
        .collect();
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

/// The table: one row per case.
pub(crate) fn markdown(rows: &[Row<'_>]) -> String {
    let mut out = String::from(
        "| # | case | sent | documented answer | observed answer | counted in `/metrics` | PROTOCOL.md |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (i, row) in rows.iter().enumerate() {
        let case = row.case;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(case.name),
            cell(&case.sent()),
            cell(case.answer),
            cell(&row.observed),
            counted(case),
            case.spec,
        );
    }
    out
}

/// Where the section begins and ends in `docs/RELIABILITY.md`.
pub(crate) const SECTION: (&str, &str) = (
    "<!-- hostile input: written by the hostile suite -->\n",
    "<!-- hostile input: end -->\n",
);

/// `page` with its section replaced by `section`; `None` without the markers.
pub(crate) fn splice(page: &str, section: &str) -> Option<String> {
    let start = page.find(SECTION.0)? + SECTION.0.len();
    let end = start + page[start..].find(SECTION.1)?;
    Some(format!("{}{section}{}", &page[..start], &page[end..]))
}

/// The section of `docs/RELIABILITY.md`: how to run the suite, what it
/// checks (the server's memory may grow by less than `rss_growth_bound`
/// bytes), and the table.
pub(crate) fn page(table: &str, rss_growth_bound: u64) -> String {
    use super::setup::{
        BUSY_CHANNEL, BUSY_EVERY, BUSY_PAD, HTTP_TIMEOUT, MAX_CHANNEL_NAME, MAX_IN_FLIGHT,
        MAX_MESSAGE_SIZE, MAX_SUBSCRIPTIONS, MAX_VIOLATIONS, OPEN_CHANNELS, OUTBOUND_QUEUE,
        OUTBOUND_QUEUE_BYTES, PING_INTERVAL, PING_TIMEOUT, RATE_BURST, RATE_PER_SEC,
        SECRET_CHANNELS,
    };
    use super::well_behaved::{EVERY, LIVENESS};
    let ms = |d: std::time::Duration| d.as_millis();
    format!(
        "## Hostile input\n\
         \n\
         `tests/hostile.rs` runs every case below against a real server process\n\
         (`tests/bin/hostile_server.rs`) over real TCP sockets, most of them with\n\
         WebSocket frames written by hand, one connection per case, while a\n\
         well-behaved native client stays connected and sends an echo request\n\
         every {} ms. Each case states the answer `docs/PROTOCOL.md` documents; the\n\
         test fails when the server answers otherwise, when a counter of `/metrics`\n\
         other than the case's moves (or it moves by another amount), when the\n\
         well-behaved client misses an answer ({} s at most) or is disconnected,\n\
         when the server's open files do not return to what they were, or when its\n\
         resident memory grows by {} MiB or more over the suite.\n\
         \n\
         The server runs with small limits so that each bound is reached quickly:\n\
         messages of {} KiB, {RATE_PER_SEC} frames a second in bursts of {RATE_BURST},\n\
         {MAX_VIOLATIONS} violations, {MAX_IN_FLIGHT} requests in flight,\n\
         {MAX_SUBSCRIPTIONS} subscriptions, channel names of {MAX_CHANNEL_NAME} bytes,\n\
         an outbound queue of {OUTBOUND_QUEUE} messages or {} KiB, heartbeats of\n\
         {} + {} ms and HTTP timeouts of {} ms. Channels `{OPEN_CHANNELS}` are open to\n\
         all (with presence), `{SECRET_CHANNELS}` are refused by their authorisation,\n\
         and no other pattern is configured but `{BUSY_CHANNEL}`, where the server\n\
         publishes {} KiB every {} ms while it has subscribers.\n\
         \n\
         The suite is part of `scripts/test-all`. Alone,\n\
         \n\
         ```sh\n\
         cargo test -p sente-lite-tests --test hostile -- --nocapture\n\
         ```\n\
         \n\
         prints the table with what was observed, the well-behaved client's latency\n\
         (p50, p99, max) and the server's memory and open files before and after.\n\
         This section is written from the same list of cases by\n\
         `SENTE_LITE_HOSTILE_DOC=1 cargo test -p sente-lite-tests --test hostile`.\n\
         \n\
         {table}",
        ms(EVERY),
        LIVENESS.as_secs(),
        rss_growth_bound >> 20,
        MAX_MESSAGE_SIZE >> 10,
        OUTBOUND_QUEUE_BYTES >> 10,
        ms(PING_INTERVAL),
        ms(PING_TIMEOUT),
        ms(HTTP_TIMEOUT),
        BUSY_PAD >> 10,
        ms(BUSY_EVERY),
    )
}
