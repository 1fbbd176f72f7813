//! The ledgers of the clients checked against the records of the servers.
//!
//! - **One-way events** (at most once): an event is *delivered* when a server
//!   recorded it, *refused* when the client API returned an error for it.
//!   One neither recorded nor refused was written on a connection whose
//!   server was killed: it is *lost with a killed server* when the client's
//!   recorded events before and after it were recorded by different server
//!   runs (a server died between them); anything else is unexplained.
//! - **Requests**: each has exactly one outcome in the ledger; an `ok` must
//!   have been recorded; an error (`closed`, a server's code) or a `timeout`
//!   was told to the client (the server may or may not have handled it).
//! - **Publications**: every publication confirmed to its publisher (`ok`,
//!   with its position) arrives at each subscriber exactly once and in
//!   order, or a gap the subscriber was told of covers it (see
//!   [`gap_covers`]).
//!
//! Recorded twice is a duplicate, whatever the kind.

use std::collections::{BTreeSet, HashMap};

use crate::ledger::{Arrival, Ledger, Position};
use crate::records::RunRecords;

/// The counts of one client.
#[derive(Debug, Clone, Default)]
pub struct ClientCounts {
    /// The client's name.
    pub client: String,
    /// `native-json`, `native-postcard` or `node`.
    pub kind: String,
    /// Connections it opened again after losing one.
    pub reconnects: u64,
    /// One-way events sent.
    pub events_sent: u64,
    /// ... recorded by a server.
    pub events_delivered: u64,
    /// ... refused by the client API, with an error the client saw.
    pub events_refused: u64,
    /// ... lost with a killed server (at most once; the client is not told which).
    pub events_lost_with_server: u64,
    /// Requests sent.
    pub requests_sent: u64,
    /// ... answered `ok` (and recorded).
    pub requests_answered: u64,
    /// ... answered with an error (`closed`, a server's code).
    pub requests_failed: u64,
    /// ... that timed out.
    pub requests_timed_out: u64,
    /// Publications asked for.
    pub publishes_sent: u64,
    /// ... confirmed (`ok`, with a position).
    pub publishes_confirmed: u64,
    /// ... that failed with an error the publisher saw (they may have been published).
    pub publishes_unconfirmed: u64,
    /// Publications received.
    pub received: u64,
    /// Gaps the client was told of.
    pub gaps_told: u64,
    /// Confirmed publications it missed that a gap it was told of covers.
    pub gap_covered: u64,
    /// Subscriptions the server refused to restore (told; subscribed again).
    pub resubscribe_refused: u64,
    /// Anything received or recorded twice.
    pub duplicates: u64,
    /// Anything received or recorded out of order.
    pub out_of_order: u64,
    /// Losses and contradictions nothing explains.
    pub unexplained: u64,
}

/// The audit of a run: the counts of each client and what went unexplained.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// One row per client, in the order of the ledgers.
    pub clients: Vec<ClientCounts>,
    /// What each unexplained, duplicate or out-of-order count is about.
    pub findings: Vec<String>,
}

impl Audit {
    /// The sum of every client's counts.
    pub fn total(&self) -> ClientCounts {
        let mut t = ClientCounts {
            client: "total".into(),
            ..Default::default()
        };
        for c in &self.clients {
            t.reconnects += c.reconnects;
            t.events_sent += c.events_sent;
            t.events_delivered += c.events_delivered;
            t.events_refused += c.events_refused;
            t.events_lost_with_server += c.events_lost_with_server;
            t.requests_sent += c.requests_sent;
            t.requests_answered += c.requests_answered;
            t.requests_failed += c.requests_failed;
            t.requests_timed_out += c.requests_timed_out;
            t.publishes_sent += c.publishes_sent;
            t.publishes_confirmed += c.publishes_confirmed;
            t.publishes_unconfirmed += c.publishes_unconfirmed;
            t.received += c.received;
            t.gaps_told += c.gaps_told;
            t.gap_covered += c.gap_covered;
            t.resubscribe_refused += c.resubscribe_refused;
            t.duplicates += c.duplicates;
            t.out_of_order += c.out_of_order;
            t.unexplained += c.unexplained;
        }
        t
    }

    /// Whether everything is accounted for: no duplicate, nothing out of
    /// order, nothing unexplained.
    pub fn clean(&self) -> bool {
        let t = self.total();
        t.duplicates == 0 && t.out_of_order == 0 && t.unexplained == 0
    }
}

/// Where the servers recorded a client's messages of one kind: each record's
/// number and the index of its run, in the order written.
type Recorded = HashMap<(char, String), Vec<(u64, usize)>>;

/// Checks `ledgers` against `runs` (in the order the runs started).
pub fn audit(ledgers: &[Ledger], runs: &[RunRecords]) -> Audit {
    let mut recorded: Recorded = HashMap::new();
    for (index, run) in runs.iter().enumerate() {
        for r in &run.records {
            recorded
                .entry((r.kind, r.client.clone()))
                .or_default()
                .push((r.seq, index));
        }
    }
    let run_index = |id: &str| runs.iter().position(|r| r.run == id);
    let publishers: HashMap<&str, &Ledger> =
        ledgers.iter().map(|l| (l.client.as_str(), l)).collect();
    let mut audit = Audit::default();
    for ledger in ledgers {
        let mut c = ClientCounts {
            client: ledger.client.clone(),
            kind: ledger.kind.clone(),
            reconnects: ledger.reconnects,
            resubscribe_refused: ledger.resubscribe_refused,
            ..Default::default()
        };
        let mut finding = |what: String| audit.findings.push(format!("{}: {what}", ledger.client));
        let recs = |kind: char| {
            recorded
                .get(&(kind, ledger.client.clone()))
                .cloned()
                .unwrap_or_default()
        };
        let bounds = (run_index(&ledger.first_run), run_index(&ledger.last_run));
        check_events(ledger, &recs('E'), bounds, &mut c, &mut finding);
        check_requests(ledger, &recs('R'), &mut c, &mut finding);
        check_publishes(ledger, &recs('P'), &mut c, &mut finding);
        for (publisher, arrivals) in &ledger.received {
            match publishers.get(publisher.as_str()) {
                Some(p) => check_channel(publisher, arrivals, p, &mut c, &mut finding),
                None => {
                    c.unexplained += 1;
                    finding(format!("no ledger from publisher {publisher}"));
                }
            }
        }
        audit.clients.push(c);
    }
    audit
}

/// How many times each number was recorded; numbers recorded twice or more
/// and numbers outside `1..=sent` are reported.
fn counted(
    what: &str,
    recs: &[(u64, usize)],
    sent: u64,
    c: &mut ClientCounts,
    finding: &mut impl FnMut(String),
) -> HashMap<u64, usize> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for &(seq, run) in recs {
        *counts.entry(seq).or_default() += 1;
        if seq == 0 || seq > sent {
            c.unexplained += 1;
            finding(format!("{what} {seq} recorded (run #{run}) but never sent"));
        }
    }
    for (&seq, &n) in &counts {
        if n > 1 {
            c.duplicates += (n - 1) as u64;
            finding(format!("{what} {seq} recorded {n} times"));
        }
    }
    counts
}

fn check_events(
    ledger: &Ledger,
    recs: &[(u64, usize)],
    (first_run, last_run): (Option<usize>, Option<usize>),
    c: &mut ClientCounts,
    finding: &mut impl FnMut(String),
) {
    c.events_sent = ledger.events_sent;
    let counts = counted("event", recs, ledger.events_sent, c, finding);
    // Within one server run a client's events are handled in the order sent.
    let mut last: HashMap<usize, u64> = HashMap::new();
    for &(seq, run) in recs {
        if let Some(&before) = last.get(&run)
            && seq < before
        {
            c.out_of_order += 1;
            finding(format!("event {seq} recorded after {before} (run #{run})"));
        }
        last.insert(run, seq);
    }
    // The run that recorded each event first, by number.
    let mut run_of: Vec<(u64, usize)> = Vec::new();
    for &(seq, run) in recs {
        if !run_of.iter().any(|&(s, _)| s == seq) {
            run_of.push((seq, run));
        }
    }
    run_of.sort_unstable();
    let refused: HashMap<u64, &str> = ledger
        .events_refused
        .iter()
        .map(|r| (r.seq, r.code.as_str()))
        .collect();
    for seq in 1..=ledger.events_sent {
        let delivered = counts.contains_key(&seq);
        match (delivered, refused.get(&seq)) {
            (true, Some(code)) => {
                c.unexplained += 1;
                finding(format!("event {seq} refused ({code}) yet recorded"));
            }
            (true, None) => c.events_delivered += 1,
            (false, Some(_)) => c.events_refused += 1,
            (false, None) => {
                let at = run_of.partition_point(|&(s, _)| s < seq);
                let before = at.checked_sub(1).map(|i| run_of[i].1).or(first_run);
                let after = run_of.get(at).map(|&(_, run)| run).or(last_run);
                if before.is_some() && after.is_some() && before != after {
                    c.events_lost_with_server += 1;
                } else {
                    c.unexplained += 1;
                    finding(format!(
                        "event {seq} lost with no server killed around it (runs #{before:?}, #{after:?})"
                    ));
                }
            }
        }
    }
}

fn check_requests(
    ledger: &Ledger,
    recs: &[(u64, usize)],
    c: &mut ClientCounts,
    finding: &mut impl FnMut(String),
) {
    c.requests_sent = ledger.requests.len() as u64;
    let counts = counted("request", recs, c.requests_sent, c, finding);
    for (i, outcome) in ledger.requests.iter().enumerate() {
        let seq = i as u64 + 1;
        match outcome.as_str() {
            "ok" if counts.contains_key(&seq) => c.requests_answered += 1,
            "ok" => {
                c.unexplained += 1;
                finding(format!("request {seq} answered ok but never recorded"));
            }
            "timeout" => c.requests_timed_out += 1,
            "" | "wrong-reply" => {
                c.unexplained += 1;
                finding(format!("request {seq}: {outcome:?}"));
            }
            _ => c.requests_failed += 1,
        }
    }
}

fn check_publishes(
    ledger: &Ledger,
    recs: &[(u64, usize)],
    c: &mut ClientCounts,
    finding: &mut impl FnMut(String),
) {
    c.publishes_sent = ledger.publishes.len() as u64;
    let counts = counted("publication", recs, c.publishes_sent, c, finding);
    for (i, p) in ledger.publishes.iter().enumerate() {
        let seq = i as u64 + 1;
        match (p.outcome.as_str(), &p.position) {
            ("ok", Some(_)) if counts.contains_key(&seq) => c.publishes_confirmed += 1,
            ("ok", _) => {
                c.unexplained += 1;
                finding(format!("publication {seq} confirmed but never recorded"));
            }
            _ => c.publishes_unconfirmed += 1,
        }
    }
}

/// What a subscriber received of one epoch of a channel (of the
/// publications confirmed to their publisher, whose positions are known).
#[derive(Debug, Clone, Default)]
pub struct EpochSeen {
    /// The offsets received.
    pub offsets: BTreeSet<u64>,
    /// The index (among the channel's arrivals) of the last one received.
    pub last_arrival: usize,
}

/// Whether a gap told at arrival index `told`, starting after `gap`, covers
/// the confirmed publication at `missed`, given what the subscriber received
/// of the missed publication's epoch:
///
/// - a gap in the same epoch covers what the server said the restored
///   subscription starts after (`missed.offset <= gap.offset`), provided
///   nothing between the two was received (else the subscription was there
///   when the missed one was published);
/// - a gap in another epoch (or without a position) covers the tail of the
///   missed publication's epoch: nothing later of that epoch was received,
///   and the gap was told after the last of it that was.
pub fn gap_covers(
    missed: &Position,
    seen: Option<&EpochSeen>,
    told: usize,
    gap: Option<&Position>,
) -> bool {
    let received_in = |range: std::ops::RangeInclusive<u64>| {
        !range.is_empty() && seen.is_some_and(|e| e.offsets.range(range).next().is_some())
    };
    match gap {
        Some(g) if g.epoch == missed.epoch => {
            missed.offset <= g.offset && !received_in(missed.offset + 1..=g.offset)
        }
        _ => {
            !received_in(missed.offset + 1..=u64::MAX) && seen.is_none_or(|e| told > e.last_arrival)
        }
    }
}

fn check_channel(
    publisher: &str,
    arrivals: &[Arrival],
    from: &Ledger,
    c: &mut ClientCounts,
    finding: &mut impl FnMut(String),
) {
    let position = |seq: u64| {
        let p = from
            .publishes
            .get(usize::try_from(seq).ok()?.checked_sub(1)?)?;
        if p.outcome == "ok" {
            p.position.as_ref()
        } else {
            None
        }
    };
    let mut received: HashMap<u64, usize> = HashMap::new();
    let mut epochs: HashMap<&str, EpochSeen> = HashMap::new();
    let mut gaps: Vec<(usize, Option<&Position>)> = Vec::new();
    let mut max = 0;
    for (index, arrival) in arrivals.iter().enumerate() {
        match arrival {
            Arrival::Gap { gap } => {
                c.gaps_told += 1;
                gaps.push((index, gap.as_ref()));
            }
            Arrival::Publication(seq) => {
                let seq = *seq;
                c.received += 1;
                if seq == 0 || seq > from.publishes.len() as u64 {
                    c.unexplained += 1;
                    finding(format!(
                        "{publisher}'s publication {seq} received but never asked for"
                    ));
                }
                if received.insert(seq, index).is_some() {
                    c.duplicates += 1;
                    finding(format!("{publisher}'s publication {seq} received twice"));
                    continue;
                }
                if seq < max {
                    c.out_of_order += 1;
                    finding(format!(
                        "{publisher}'s publication {seq} received after {max}"
                    ));
                }
                max = max.max(seq);
                if let Some(p) = position(seq) {
                    let e = epochs.entry(p.epoch.as_str()).or_default();
                    e.offsets.insert(p.offset);
                    e.last_arrival = index;
                }
            }
        }
    }
    for seq in 1..=from.publishes.len() as u64 {
        let Some(missed) = position(seq) else {
            continue;
        };
        if received.contains_key(&seq) {
            continue;
        }
        let seen = epochs.get(missed.epoch.as_str());
        if gaps
            .iter()
            .any(|&(told, gap)| gap_covers(missed, seen, told, gap))
        {
            c.gap_covered += 1;
        } else {
            c.unexplained += 1;
            finding(format!(
                "{publisher}'s publication {seq} ({}:{}) missed, no gap told covers it",
                missed.epoch, missed.offset
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{PublishOutcome, Refusal};
    use crate::records::Record;

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    /// Publisher `p`, whose publications landed at `positions` (all `ok`),
    /// all recorded by run `r0`; subscriber `s` received `arrivals` of it.
    fn channel(positions: &[Position], arrivals: Vec<Arrival>) -> Audit {
        let publisher = Ledger {
            client: "p".into(),
            first_run: "r0".into(),
            last_run: "r0".into(),
            publishes: positions
                .iter()
                .map(|p| PublishOutcome {
                    outcome: "ok".into(),
                    position: Some(p.clone()),
                })
                .collect(),
            ..Default::default()
        };
        let subscriber = Ledger {
            client: "s".into(),
            first_run: "r0".into(),
            last_run: "r0".into(),
            received: [("p".to_owned(), arrivals)].into(),
            ..Default::default()
        };
        let records = (1..=positions.len() as u64)
            .map(|seq| Record {
                kind: 'P',
                client: "p".into(),
                seq,
            })
            .collect();
        let runs = [RunRecords {
            run: "r0".into(),
            records,
        }];
        audit(&[publisher, subscriber], &runs)
    }

    fn gap(epoch: &str, offset: u64) -> Arrival {
        Arrival::Gap {
            gap: Some(at(epoch, offset)),
        }
    }

    use Arrival::Publication as P;

    #[test]
    fn everything_received_once_in_order_is_clean() {
        let audit = channel(&[at("e", 1), at("e", 2)], vec![P(1), P(2)]);
        assert!(audit.clean(), "{:?}", audit.findings);
        assert_eq!(audit.total().received, 2);
    }

    #[test]
    fn a_publication_missed_without_a_gap_is_unexplained() {
        let audit = channel(&[at("e", 1), at("e", 2), at("e", 3)], vec![P(1), P(3)]);
        assert_eq!(audit.total().unexplained, 1, "{:?}", audit.findings);
        assert!(!audit.clean());
    }

    #[test]
    fn twice_or_backwards_is_counted() {
        let audit = channel(&[at("e", 1), at("e", 2)], vec![P(1), P(1), P(2)]);
        assert_eq!(audit.total().duplicates, 1);
        let audit = channel(&[at("e", 1), at("e", 2)], vec![P(2), P(1)]);
        assert_eq!(audit.total().out_of_order, 1);
    }

    #[test]
    fn a_lost_epoch_and_the_start_of_the_next_are_covered_by_the_gap_told() {
        // 2 was the tail of e1 (lost with the server); 3 was published on
        // the new server before the subscriber came back; 5 came before the
        // answer to its subscription, hence before the gap was told.
        let positions = [
            at("e1", 1),
            at("e1", 2),
            at("e2", 1),
            at("e2", 2),
            at("e2", 3),
        ];
        let audit = channel(&positions, vec![P(1), P(5), gap("e2", 2), P(4)]);
        // 4 after 5 is out of order: the publisher published 4 first.
        assert_eq!(audit.total().out_of_order, 1);
        let audit = channel(&positions, vec![P(1), gap("e2", 1), P(4), P(5)]);
        assert!(audit.clean(), "{:?}", audit.findings);
        assert_eq!(audit.total().gap_covered, 2);
    }

    #[test]
    fn a_gap_does_not_cover_what_the_subscription_skipped_before_it() {
        // 2 skipped while 3 arrived on the same subscription: a later gap in
        // the same epoch does not explain it (it explains 4).
        let positions = [at("e", 1), at("e", 2), at("e", 3), at("e", 4), at("e", 5)];
        let audit = channel(&positions, vec![P(1), P(3), gap("e", 4), P(5)]);
        assert_eq!(audit.total().unexplained, 1, "{:?}", audit.findings);
        // Trimmed history: 2 and 3 missed while away, told.
        let audit = channel(&positions, vec![P(1), gap("e", 3), P(4), P(5)]);
        assert!(audit.clean(), "{:?}", audit.findings);
        // Another epoch's gap covers the old epoch's tail (4, 5), not a
        // skip inside it (2).
        let audit = channel(&positions, vec![P(1), P(3), gap("f", 0)]);
        assert_eq!(audit.total().unexplained, 1, "{:?}", audit.findings);
        assert_eq!(audit.total().gap_covered, 2);
    }

    fn sender(events_sent: u64, refused: &[u64], requests: &[&str]) -> Ledger {
        Ledger {
            client: "c".into(),
            first_run: "r0".into(),
            last_run: "r1".into(),
            events_sent,
            events_refused: refused
                .iter()
                .map(|&seq| Refusal {
                    seq,
                    code: "queue-full".into(),
                })
                .collect(),
            requests: requests.iter().map(|&o| o.to_owned()).collect(),
            ..Default::default()
        }
    }

    fn runs(recorded: &[&[(char, u64)]]) -> Vec<RunRecords> {
        recorded
            .iter()
            .enumerate()
            .map(|(i, records)| RunRecords {
                run: format!("r{i}"),
                records: records
                    .iter()
                    .map(|&(kind, seq)| Record {
                        kind,
                        client: "c".into(),
                        seq,
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn an_event_is_lost_only_with_a_server() {
        let ledger = sender(4, &[], &[]);
        // 3 lost while run 0 went on recording 4: unexplained.
        let checked = audit(
            std::slice::from_ref(&ledger),
            &runs(&[&[('E', 1), ('E', 2), ('E', 4)], &[]]),
        );
        assert_eq!(checked.total().unexplained, 1);
        // 3 lost when run 0 died; 4 went to run 1.
        let checked = audit(&[ledger], &runs(&[&[('E', 1), ('E', 2)], &[('E', 4)]]));
        assert!(checked.clean(), "{:?}", checked.findings);
        assert_eq!(checked.total().events_lost_with_server, 1);
        assert_eq!(checked.total().events_delivered, 3);
    }

    #[test]
    fn a_refused_event_is_not_delivered() {
        let ledger = sender(2, &[2], &[]);
        let checked = audit(std::slice::from_ref(&ledger), &runs(&[&[('E', 1)], &[]]));
        assert!(checked.clean());
        assert_eq!(checked.total().events_refused, 1);
        let checked = audit(&[ledger], &runs(&[&[('E', 1), ('E', 2)], &[]]));
        assert_eq!(checked.total().unexplained, 1, "refused yet delivered");
    }

    #[test]
    fn requests_are_answered_once_and_recorded_when_ok() {
        let ledger = sender(0, &[], &["ok", "closed", "timeout"]);
        let checked = audit(
            std::slice::from_ref(&ledger),
            &runs(&[&[('R', 1), ('R', 2)], &[]]),
        );
        assert!(checked.clean(), "{:?}", checked.findings);
        let t = checked.total();
        assert_eq!(
            (t.requests_answered, t.requests_failed, t.requests_timed_out),
            (1, 1, 1)
        );
        // Answered ok, never recorded.
        let checked = audit(std::slice::from_ref(&ledger), &runs(&[&[('R', 2)], &[]]));
        assert_eq!(checked.total().unexplained, 1);
        // Handled twice.
        let checked = audit(&[ledger], &runs(&[&[('R', 1)], &[('R', 1)]]));
        assert_eq!(checked.total().duplicates, 1);
    }
}
