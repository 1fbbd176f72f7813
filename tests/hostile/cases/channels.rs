//! Subscriptions the server refuses: authorisation, patterns, names, bounds.

use super::{Case, Run};
use crate::hostile::answer::{answers, ending, summary};
use crate::hostile::raw::{Frame, RawWs};
use crate::hostile::setup::MAX_SUBSCRIPTIONS;

/// A refused subscription: the task that handles `sl/sub` (or `sl/presence`)
/// ended with an error.
const REFUSED: &[(&str, u64)] = &[("errors_handler_error", 1)];

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "channel: refused by its authorisation",
            sent: "",
            answer: "sl/err 1 forbidden; open",
            spec: "§8",
            counted: REFUSED,
            run: Run::Text(r#"["sl/sub",1,"secret/plans"]"#),
        },
        Case {
            name: "channel: no pattern matches",
            sent: "",
            answer: "sl/err 2 forbidden; open",
            spec: "§8",
            counted: REFUSED,
            run: Run::Text(r#"["sl/sub",2,"nowhere/x"]"#),
        },
        Case {
            name: "channel: empty name",
            sent: "",
            answer: "sl/err 3 forbidden; open",
            spec: "§8",
            counted: REFUSED,
            run: Run::Text(r#"["sl/sub",3,""]"#),
        },
        Case {
            name: "channel: name over max_channel_name",
            sent: "",
            answer: "sl/err 4 forbidden; open",
            spec: "§8, §10",
            counted: REFUSED,
            run: Run::Text(
                r#"["sl/sub",4,"open/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]"#,
            ),
        },
        Case {
            name: "channel: channel that is not a string",
            sent: "",
            answer: "sl/err 5 bad-frame; open",
            spec: "§3",
            counted: &[("errors_bad_frame", 1)],
            run: Run::Text(r#"["sl/sub",5,{"name":"open/a"}]"#),
        },
        Case {
            name: "channel: since offset over 2^64 - 1",
            sent: "",
            answer: "sl/err 7 bad-frame; open",
            spec: "§3",
            counted: &[("errors_bad_frame", 1)],
            run: Run::Text(r#"["sl/sub",7,"open/a",{"epoch":"e","offset":18446744073709551616}]"#),
        },
        Case {
            name: "channel: presence of a channel not subscribed",
            sent: "",
            answer: "sl/err 6 forbidden; open",
            spec: "§8 Presence",
            counted: REFUSED,
            run: Run::Text(r#"["sl/presence",6,"open/a",true]"#),
        },
        Case {
            name: "flood: subscriptions past max_subscriptions",
            sent: "6 `sl/sub` to `open/1` … `open/6` at once (bound 4)",
            answer: "sl/ok 1; sl/ok 2; sl/ok 3; sl/ok 4; sl/err 5 forbidden; sl/err 6 forbidden; open",
            spec: "§8, §10",
            counted: &[("errors_handler_error", 2)],
            run: Run::Custom(|target| Box::pin(subscribe_flood(target.addr))),
        },
    ]
}

async fn subscribe_flood(addr: &str) -> String {
    let count = MAX_SUBSCRIPTIONS + 2;
    let mut ws = RawWs::open(addr, None).await;
    let frames: Vec<Frame> = (1..=count)
        .map(|n| Frame::text(format!(r#"["sl/sub",{n},"open/{n}"]"#)))
        .collect();
    let _ = ws.send(&frames).await;
    let mut seen = answers(&mut ws, count).await;
    // Replies to different requests come in any order (section 7).
    seen.sort_by_key(|a| a.split(' ').nth(1).and_then(|id| id.parse::<u64>().ok()));
    seen.extend(ending(&mut ws).await);
    summary(&seen)
}
