//! The audit printed as three tables (events, requests, publications), one
//! row per client and a total, then what went unexplained.

use std::fmt::Write as _;

use crate::audit::{Audit, ClientCounts};

/// A table: a header and one row per client, then the total.
fn table(
    out: &mut String,
    audit: &Audit,
    header: &[&str],
    row: impl Fn(&ClientCounts) -> Vec<u64>,
) {
    let total = audit.total();
    let rows: Vec<(String, String, Vec<u64>)> = audit
        .clients
        .iter()
        .chain(std::iter::once(&total))
        .map(|c| (c.client.clone(), c.kind.clone(), row(c)))
        .collect();
    let _ = write!(out, "{:<10} {:<16}", "client", "kind");
    for h in header {
        let _ = write!(out, " {h:>w$}", w = h.len().max(7));
    }
    out.push('\n');
    for (client, kind, values) in rows {
        let _ = write!(out, "{client:<10} {kind:<16}");
        for (h, v) in header.iter().zip(values) {
            let _ = write!(out, " {v:>w$}", w = h.len().max(7));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The report of `audit`.
pub fn render(audit: &Audit) -> String {
    let mut out = String::new();
    out.push_str("One-way events\n");
    table(
        &mut out,
        audit,
        &["sent", "delivered", "refused", "lost-with-server"],
        |c| {
            vec![
                c.events_sent,
                c.events_delivered,
                c.events_refused,
                c.events_lost_with_server,
            ]
        },
    );
    out.push_str("Requests\n");
    table(
        &mut out,
        audit,
        &["sent", "answered", "failed", "timed-out"],
        |c| {
            vec![
                c.requests_sent,
                c.requests_answered,
                c.requests_failed,
                c.requests_timed_out,
            ]
        },
    );
    out.push_str(
        "Publications (sent/confirmed/unconfirmed: as publisher; the rest: as subscriber)\n",
    );
    table(
        &mut out,
        audit,
        &[
            "sent",
            "confirmed",
            "unconfirmed",
            "received",
            "gaps-told",
            "gap-covered",
            "resub-refused",
        ],
        |c| {
            vec![
                c.publishes_sent,
                c.publishes_confirmed,
                c.publishes_unconfirmed,
                c.received,
                c.gaps_told,
                c.gap_covered,
                c.resubscribe_refused,
            ]
        },
    );
    out.push_str("Accounting (all kinds)\n");
    table(
        &mut out,
        audit,
        &["reconnects", "duplicates", "out-of-order", "unexplained"],
        |c| vec![c.reconnects, c.duplicates, c.out_of_order, c.unexplained],
    );
    for f in audit.findings.iter().take(50) {
        let _ = writeln!(out, "  {f}");
    }
    if audit.findings.len() > 50 {
        let _ = writeln!(out, "  ... and {} more", audit.findings.len() - 50);
    }
    out
}
