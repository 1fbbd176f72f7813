//! Floods: past the inbound rate limit, the in-flight bound and the
//! violation allowance, and WebSocket pings by the thousand.

use std::time::Duration;

use super::{Case, RATE_BURST, Run, SOME};
use crate::hostile::answer::{answers, ending, summary};
use crate::hostile::raw::{Frame, RawWs, op};
use crate::hostile::setup::MAX_IN_FLIGHT;

/// How many frames a flood sends at once: well past the burst.
const FLOOD: u64 = 300;

/// The answers to a flood of `sl/ping`: the burst, and what the bucket
/// refilled meanwhile, in order.
const PONGS: &str = "sl/pong to each ping the bucket holds a token for";

/// A flood closed by the violation it commits past the allowance: 21
/// dropped frames (the allowance of 20, and one more).
const RATE_CLOSED: &[(&str, u64)] = &[("errors_rate_limited", 21), ("closed_policy", 1)];

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "flood: one-way events past the rate limit",
            sent: "300 `hostile/note` events at once (burst 200)",
            answer: "sl/error rate-limited; close 1008",
            spec: "§9 Violations, §10",
            counted: RATE_CLOSED,
            run: Run::Frames(|| {
                (0..FLOOD)
                    .map(|n| Frame::text(format!(r#"["hostile/note",{{"text":"{n}"}}]"#)))
                    .collect()
            }),
        },
        Case {
            name: "flood: sl/ping past the rate limit",
            sent: "300 `sl/ping` at once (burst 200)",
            answer: concat!(
                "sl/pong to each ping the bucket holds a token for; ",
                "sl/error rate-limited; close 1008"
            ),
            spec: "§6, §9 Violations, §10",
            counted: RATE_CLOSED,
            run: Run::Custom(|target| Box::pin(ping_flood(target.addr))),
        },
        Case {
            name: "flood: requests past the rate limit",
            sent: "210 `sl/unsub` at once, ids 1 to 210 (burst 200)",
            answer: "sl/ok or sl/err rate-limited to each id, sl/ok to the first 200; open",
            spec: "§9, §10",
            counted: &[("errors_rate_limited", SOME)],
            run: Run::Custom(|target| Box::pin(unsub_flood(target.addr))),
        },
        Case {
            name: "flood: requests past the in-flight bound",
            sent: "10 `hostile/slow` (300 ms) at once, ids 1 to 10 (bound 8)",
            answer: "sl/err 9 too-many-requests; sl/err 10 too-many-requests; sl/ok 1; sl/ok 2; sl/ok 3; sl/ok 4; sl/ok 5; sl/ok 6; sl/ok 7; sl/ok 8; open",
            spec: "§7, §10",
            counted: &[("errors_too_many_requests", 2)],
            run: Run::Custom(|target| Box::pin(in_flight_flood(target.addr))),
        },
        Case {
            name: "flood: duplicate request id in flight",
            sent: "`hostile/slow` (300 ms) with id 5, twice",
            answer: "sl/err 5 duplicate-request; sl/ok 5; open",
            spec: "§7",
            counted: &[("errors_duplicate_request", 1)],
            run: Run::Frames(|| {
                let slow = Frame::text(r#"["hostile/slow",{"ms":300},5]"#);
                vec![slow.clone(), slow]
            }),
        },
        Case {
            name: "flood: violations past the allowance",
            sent: "21 `[\"sl/nope\",1]` at once (allowance 20)",
            answer: "sl/error bad-frame × 21; close 1008",
            spec: "§9 Violations",
            counted: &[("errors_bad_frame", 21), ("closed_policy", 1)],
            run: Run::Frames(|| vec![Frame::text(r#"["sl/nope",1]"#); 21]),
        },
        Case {
            name: "flood: WebSocket pings",
            sent: "2,000 WebSocket pings of 125 bytes at once",
            answer: "WebSocket pongs; open",
            spec: "§1, §10 (not data frames: not rate-limited)",
            counted: &[],
            run: Run::Custom(|target| Box::pin(websocket_ping_flood(target.addr))),
        },
    ]
}

/// Sends `frames` on a new JSON connection and reads answers until it ends.
async fn flood_until_closed(addr: &str, frames: &[Frame]) -> Vec<String> {
    let mut ws = RawWs::open(addr, None).await;
    let _ = ws.send(frames).await;
    answers(&mut ws, usize::MAX).await
}

async fn ping_flood(addr: &str) -> String {
    let pings: Vec<Frame> = (1..=FLOOD)
        .map(|n| Frame::text(format!(r#"["sl/ping",{n}]"#)))
        .collect();
    let mut seen = flood_until_closed(addr, &pings).await;
    // The burst is answered in order, and so is each ping the bucket refilled
    // a token for meanwhile (some may come after the first drop).
    let pongs: Vec<u64> = seen
        .iter()
        .filter_map(|a| a.strip_prefix("sl/pong ")?.parse().ok())
        .collect();
    let burst = usize::try_from(RATE_BURST).expect("small");
    let in_order = pongs.windows(2).all(|w| w[0] < w[1]);
    if in_order
        && pongs.len() >= burst
        && pongs[..burst].iter().copied().eq(1..=u64::from(RATE_BURST))
    {
        seen.retain(|a| !a.starts_with("sl/pong "));
        seen.insert(0, PONGS.to_owned());
    }
    summary(&seen)
}

async fn unsub_flood(addr: &str) -> String {
    const COUNT: u64 = 210;
    let mut ws = RawWs::open(addr, None).await;
    let frames: Vec<Frame> = (1..=COUNT)
        .map(|n| Frame::text(format!(r#"["sl/unsub",{n},"open/a"]"#)))
        .collect();
    let _ = ws.send(&frames).await;
    let seen = answers(&mut ws, usize::try_from(COUNT).expect("small")).await;
    let mut ids: Vec<(u64, bool)> = Vec::new();
    for answer in &seen {
        if let Some(id) = answer.strip_prefix("sl/ok ") {
            ids.push((id.parse().unwrap_or(0), true));
        } else if let Some(id) = answer
            .strip_prefix("sl/err ")
            .and_then(|rest| rest.strip_suffix(" rate-limited"))
        {
            ids.push((id.parse().unwrap_or(0), false));
        } else {
            return summary(&seen);
        }
    }
    ids.sort_unstable();
    let each_once = ids.iter().map(|(id, _)| *id).eq(1..=COUNT);
    let burst_ok = ids
        .iter()
        .take(usize::try_from(RATE_BURST).expect("small"))
        .all(|(_, ok)| *ok);
    // The bucket holds a token again before the connection is probed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut observed = vec![if each_once && burst_ok {
        "sl/ok or sl/err rate-limited to each id, sl/ok to the first 200".to_owned()
    } else {
        format!("{ids:?}")
    }];
    observed.extend(ending(&mut ws).await);
    summary(&observed)
}

async fn in_flight_flood(addr: &str) -> String {
    let count = MAX_IN_FLIGHT + 2;
    let mut ws = RawWs::open(addr, None).await;
    let frames: Vec<Frame> = (1..=count)
        .map(|n| Frame::text(format!(r#"["hostile/slow",{{"ms":300}},{n}]"#)))
        .collect();
    let _ = ws.send(&frames).await;
    let mut seen = answers(&mut ws, count).await;
    // The refusals come at once; the replies in any order.
    let refused = seen.iter().take_while(|a| a.starts_with("sl/err ")).count();
    seen[refused..].sort_by_key(|a| {
        a.strip_prefix("sl/ok ")
            .and_then(|id| id.parse::<u64>().ok())
    });
    seen.extend(ending(&mut ws).await);
    summary(&seen)
}

async fn websocket_ping_flood(addr: &str) -> String {
    const PINGS: usize = 2_000;
    let mut ws = RawWs::open(addr, None).await;
    let pings = vec![Frame::new(op::PING, vec![b'p'; 125]); PINGS];
    let _ = ws.send(&pings).await;
    // Then the probe: the pongs come before its answer, as many as the
    // WebSocket layer kept (it may answer several pings with one pong).
    let seen = ending(&mut ws).await;
    let pongs = seen.iter().filter(|a| *a == "WebSocket pong").count();
    let rest: Vec<String> = seen.into_iter().filter(|a| a != "WebSocket pong").collect();
    let mut observed = Vec::new();
    if (1..=PINGS).contains(&pongs) {
        observed.push("WebSocket pongs".to_owned());
    }
    observed.extend(rest);
    summary(&observed)
}
