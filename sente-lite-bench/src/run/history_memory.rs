//! Scenario 6: memory per stored publication. For each layout (one channel
//! holding every publication, or many channels holding a share each), a
//! process of its own fills the histories (`fill`) and reports its resident
//! memory before and after, beside the bytes of frames the engine holds.

use std::time::Duration;

use super::Context;
use super::processes::run_to_end;
use crate::report::{HistoryMemoryCell, Report};
use crate::wire::BoxError;

/// How long one fill may take.
const FILL_TIMEOUT: Duration = Duration::from_secs(300);

async fn one(context: &Context, channels: usize) -> Result<HistoryMemoryCell, BoxError> {
    let plan = &context.plan;
    context.quiet().await;
    let args = [
        "fill".to_owned(),
        "--publications".to_owned(),
        plan.memory_publications.to_string(),
        "--channels".to_owned(),
        channels.to_string(),
        "--payload".to_owned(),
        plan.memory_payload.to_string(),
    ];
    let out = run_to_end(&args, &context.pinning, FILL_TIMEOUT).await?;
    let json = out
        .lines()
        .find_map(|line| line.strip_prefix("result "))
        .ok_or("the fill gave no result")?;
    Ok(serde_json::from_str(json)?)
}

/// Runs scenario 6 for every layout.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    let plan = &context.plan;
    for &channels in &plan.memory_channels {
        match one(context, channels).await {
            Ok(cell) => {
                eprintln!(
                    "  memory {:>6} channels × {:>6}: {:.0} B of RSS and {:.0} B of frames per publication",
                    channels,
                    cell.per_channel,
                    cell.rss_per_publication(),
                    cell.history_bytes_per_publication()
                );
                report.history_memory.push(cell);
            }
            Err(err) => report.note(format!(
                "History memory, {} publications on {channels} channels: {err}",
                plan.memory_publications
            )),
        }
    }
}
